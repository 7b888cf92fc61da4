//! Differential tests of the string instructions: MOVS STOS LODS CMPS SCAS in every size,
//! with and without REP/REPE/REPNE, DF clear and set, short and long counts (the long ones
//! take pagelab's page-at-a-time REP MOVSB/STOSB path), overlapping moves, and the 32-bit
//! address-size form. Emulated-only tests check that a REP faulting part-way has committed
//! exactly the iterations done and restarts at the instruction.

use emu::cpu::{flags, Exception, Exit};
use pagelab_tests::insn::reg::*;
use pagelab_tests::insn::*;

const N: usize = 200;

/// RSI and RDI somewhere in the middle of the data area (room for 0x1000 bytes either way),
/// a small count, and DF random.
fn short(rng: &mut Rng, st: &mut State) {
    st.gpr[RSI] = DATA_VA + 0x1000 + rng.below(0x2000);
    st.gpr[RDI] = DATA_VA + 0x1000 + rng.below(0x2000);
    st.gpr[RCX] = if rng.below(8) == 0 { 0 } else { rng.below(200) };
    if rng.below(2) == 0 {
        st.rflags |= flags::DF;
    }
}

/// For CMPS/SCAS: make the compared data mostly equal (a copy of the source, or filled with
/// AL's element), with an occasional difference, so REPE runs long and REPNE stops early.
fn similar(size: usize) -> impl Fn(&mut Rng, &mut State) {
    move |rng, st| {
        short(rng, st);
        let down = st.rflags & flags::DF != 0;
        let n = 200 * size;
        let lo = |p: u64| if down { p + size as u64 - n as u64 } else { p };
        let (src, dst) = (lo(st.gpr[RSI]), lo(st.gpr[RDI]));
        let mut bytes: Vec<u8> = (0..n).map(|i| st.read::<1>(src + i as u64)[0]).collect();
        if rng.below(2) == 0 {
            let acc = st.gpr[RAX].to_le_bytes();
            bytes = (0..n).map(|i| acc[i % size]).collect();
        }
        st.write(dst, &bytes);
        if rng.below(3) != 0 {
            let k = rng.below(n as u64);
            st.write(dst + k, &[rng.next() as u8]);
        }
    }
}

macro_rules! forms {
    ($name:ident, [$($op:ident),*], $setup:expr) => {
        #[test]
        fn $name() {
            for (i, sn) in [$(asm(|a| a.$op())),*].iter().enumerate() {
                let size = [1, 2, 4, 8][i];
                let setup = $setup(size);
                check_random(sn, N, &setup);
            }
            for (i, sn) in [$(asm(|a| a.rep().$op())),*].iter().enumerate() {
                let setup = $setup([1, 2, 4, 8][i]);
                check_random(sn, N, &setup);
            }
        }
    };
}

fn plain(_: usize) -> impl Fn(&mut Rng, &mut State) {
    short
}

forms!(movs, [movsb, movsw, movsd, movsq], plain);
forms!(stos, [stosb, stosw, stosd, stosq], plain);
forms!(lods, [lodsb, lodsw, lodsd, lodsq], plain);

macro_rules! compares {
    ($name:ident, [$($op:ident),*]) => {
        #[test]
        fn $name() {
            for (i, sn) in [$(asm(|a| a.$op())),*].iter().enumerate() {
                check_random(sn, N, similar([1, 2, 4, 8][i]));
            }
            for (i, sn) in [$(asm(|a| a.repe().$op())),*].iter().enumerate() {
                check_random(sn, N, similar([1, 2, 4, 8][i]));
            }
            for (i, sn) in [$(asm(|a| a.repne().$op())),*].iter().enumerate() {
                check_random(sn, N, similar([1, 2, 4, 8][i]));
            }
        }
    };
}

compares!(cmps, [cmpsb, cmpsw, cmpsd, cmpsq]);
compares!(scas, [scasb, scasw, scasd, scasq]);

/// Long REP MOVS/STOS across pages, both directions, including overlapping moves with the
/// destination just above or below the source (the pattern-replicating case).
#[test]
fn long_rep() {
    let long = |size: u64| {
        move |rng: &mut Rng, st: &mut State| {
            let len = rng.below(0x2800 / size) + 1;
            let bytes = len * size;
            let room = DATA_LEN as u64 - bytes - 0x40;
            let src = DATA_VA + 0x20 + rng.below(room);
            let dst = match rng.below(4) {
                0 => (src + 1 + rng.below(17)).min(DATA_VA + DATA_LEN as u64 - bytes),
                1 => src.saturating_sub(1 + rng.below(17)).max(DATA_VA),
                _ => DATA_VA + 0x20 + rng.below(room),
            };
            let down = rng.below(4) == 0;
            if down {
                st.rflags |= flags::DF;
            }
            let at = |p: u64| if down { p + bytes - size } else { p };
            st.gpr[RSI] = at(src);
            st.gpr[RDI] = at(dst);
            st.gpr[RCX] = len;
        }
    };
    for (sn, size) in [
        (asm(|a| a.rep().movsb()), 1),
        (asm(|a| a.rep().movsw()), 2),
        (asm(|a| a.rep().movsd()), 4),
        (asm(|a| a.rep().movsq()), 8),
        (asm(|a| a.rep().stosb()), 1),
        (asm(|a| a.rep().stosw()), 2),
        (asm(|a| a.rep().stosd()), 4),
        (asm(|a| a.rep().stosq()), 8),
    ] {
        check_random(&sn, 60, long(size));
    }
}

/// The 0x67 address-size prefix: ESI/EDI/ECX, written back zero-extended. A REP form with
/// ECX = 0 runs no iteration; whether it still writes RCX/RSI/RDI back is the vendor's
/// (Intel's fast-string microcode does, AMD leaves the upper halves): `cpu::model`.
#[test]
fn address_size_32() {
    for (sn, rep) in [
        (asm(|a| a.db(&[0xf3, 0x67, 0xa4])), true),
        (asm(|a| a.db(&[0xf3, 0x67, 0x48, 0xab])), true),
        (asm(|a| a.db(&[0x67, 0xac])), false),
        (asm(|a| a.db(&[0xf3, 0x67, 0xa6])), true),
        (asm(|a| a.db(&[0xf2, 0x67, 0xae])), true),
        (asm(|a| a.db(&[0xf3, 0x67, 0xac])), true),
    ] {
        let setup = |rng: &mut Rng, st: &mut State| {
            short(rng, st);
            // Upper halves are ignored as addresses and the count, and cleared on write-back.
            st.gpr[RSI] |= rng.next() << 32;
            st.gpr[RDI] |= rng.next() << 32;
            st.gpr[RCX] |= rng.next() << 32;
        };
        check_random_vs(&sn, N, setup, |st| {
            let vs = VendorSpecific::new("upper halves of RCX/RSI/RDI after a REP with 32-bit addressing and ECX = 0 (vendors differ)");
            if rep && st.gpr[RCX] as u32 == 0 {
                let hi = 0xffff_ffff_0000_0000;
                vs.gpr(RCX, hi).gpr(RSI, hi).gpr(RDI, hi)
            } else {
                vs
            }
        });
    }
}

/// A REP that faults part-way commits the completed iterations and leaves RIP at the
/// instruction, so the kernel can fix the fault and restart it.
#[test]
fn rep_fault_is_restartable() {
    let cases: [(Snippet, u64, u64, u64, u64); 4] = [
        // (snippet, element size, RDI, RCX, faulting page)
        (asm(|a| a.rep().movsb()), 1, RO_VA - 100, 300, RO_VA),
        (asm(|a| a.rep().movsb()), 1, RO_VA - 0x1805, 0x2000, RO_VA),
        (asm(|a| a.rep().stosq()), 8, RO_VA - 24, 10, RO_VA),
        (asm(|a| a.rep().stosd()), 4, RO_VA - 6, 4, RO_VA),
    ];
    for (sn, size, dst, count, page) in cases {
        let mut emu = Emu::new(&sn);
        let mut st = random_state(&mut Rng::new(3));
        st.gpr[RSI] = DATA_VA;
        st.gpr[RDI] = dst;
        st.gpr[RCX] = count;
        let (exit, got, rip) = emu.run(&st);
        assert!(matches!(exit, Exit::Exception(Exception::PageFault { addr, .. }) if addr >> 12 == page >> 12), "{exit:?}\n{}", sn.text);
        assert_eq!(rip, SNIPPET_VA);
        // Whole elements before the page were done; the straddling one (if any) was not.
        let done = (page - dst) / size;
        assert_eq!(got.gpr[RCX], count - done, "{}", sn.text);
        assert_eq!(got.gpr[RDI], dst + done * size);
        // The bytes before the read-only page are exactly the completed elements.
        let mut want = st.clone();
        for i in 0..done * size {
            let b = if sn.text.contains("movs") { st.read::<1>(DATA_VA + i)[0] } else { st.gpr[RAX].to_le_bytes()[(i % size) as usize] };
            want.write(dst + i, &[b]);
        }
        assert!(got.mem == want.mem, "memory after the partial REP differs\n{}", sn.text);
    }
}
