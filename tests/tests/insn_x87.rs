//! Differential tests of the x87 subset, natively and under pagelab. pagelab holds x87
//! values as doubles (see emu/src/cpu/x87.rs), so the inputs are doubles, which the
//! extended format holds exactly, and arithmetic runs with FCW.PC = double precision on
//! operands whose results stay in the normal double range: there both agree bit for bit.
//! Every snippet starts with FNINIT and leaves the x87 stack empty (the host ABI wants it).

use iced_x86::code_asm::*;
use pagelab_tests::insn::*;

const A: u64 = DATA_VA;
const B: u64 = DATA_VA + 0x10;
const CW: u64 = DATA_VA + 0x20;
const OUT: u64 = DATA_VA + 0x40;

const EDGES_F64: &[u64] = &[
    0,
    0x8000_0000_0000_0000,
    0x3ff0_0000_0000_0000,
    0xbff8_0000_0000_0000,
    0x3fd5_5555_5555_5555,
    0x7fef_ffff_ffff_ffff,
    0x0010_0000_0000_0000,
    0x0000_0000_0000_0001,
    0x800f_ffff_ffff_ffff,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    0x7ff8_0000_0000_0000,
    0xfff8_0000_0000_1234,
    0x7ff0_0000_0000_0001,
    0x47ef_ffff_f000_0000,
    0x36a0_0000_0000_0000,
    0x4004_0000_0000_0000,
    0xc00c_0000_0000_0000,
    0x41e0_0000_0000_0000,
    0xc3e0_0000_0000_0000,
    0x40df_fff0_0000_0000,
    0x40e0_0000_1000_0000,
];

/// A double in a moderate range (no overflow or underflow when combined with another).
fn nice(rng: &mut Rng) -> u64 {
    let e = 1023 - 60 + rng.below(120);
    (rng.next() & (1 << 63)) | e << 52 | (rng.next() >> 12)
}

fn sn(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Snippet {
    asm(|a| {
        a.fninit()?;
        a.fldcw(word_ptr(CW))?;
        body(a)
    })
}

/// The x87 condition codes C0, C2 and C3 in AX after FNSTSW, when the last instruction that
/// touched them leaves them undefined (SDM Vol. 2: FLD, FST(P), FXCH, FABS, FCHS, FADD and
/// the other arithmetic, FILD, FIST(P), FISTTP all say "C0, C2, C3 undefined"). pagelab
/// leaves them unchanged, as Intel cores do (`cpu::model`).
fn cc_undefined() -> VendorSpecific {
    VendorSpecific::new("x87 C0/C2/C3 after an instruction that leaves them undefined (SDM)").gpr(pagelab_tests::insn::reg::RAX, 0x4500)
}

/// Runs `s` over every pair of edge values in A and B (under each rounding control in
/// `cws`), then `n` random cases with values from `value`. Every snippet run here ends its
/// x87 work with an instruction that leaves C0/C2/C3 undefined ([`cc_undefined`]).
fn run(s: &Snippet, edges: &[u64], cws: &[u16], n: usize, value: fn(&mut Rng) -> u64) {
    let mut emu = Emu::new(s);
    let mut rng = Rng::new(s.code.len() as u64 * 31 + s.code.iter().map(|&b| b as u64).sum::<u64>());
    for &x in edges {
        for &y in edges {
            for &cw in cws {
                let mut st = random_state(&mut rng);
                st.write_u64(A, x);
                st.write_u64(B, y);
                st.write(CW, &cw.to_le_bytes());
                check_vendor(s, &mut emu, &st, 0, &cc_undefined());
            }
        }
    }
    for _ in 0..n {
        let mut st = random_state(&mut rng);
        st.write_u64(A, value(&mut rng));
        st.write_u64(B, value(&mut rng));
        let cw = cws[rng.below(cws.len() as u64) as usize];
        st.write(CW, &cw.to_le_bytes());
        check_vendor(s, &mut emu, &st, 0, &cc_undefined());
    }
}

/// The default control word and the other three rounding controls.
const ALL_RC: &[u16] = &[0x037f, 0x077f, 0x0b7f, 0x0f7f];

#[test]
fn loads_and_stores() {
    for s in [
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fld(st0)?;
            a.fstp(tword_ptr(OUT))?;
            a.fst(qword_ptr(OUT + 16))?;
            a.fstp(st0)?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fstp(dword_ptr(OUT))?;
            a.fnstsw(ax)?;
            // C1 (the round-up indicator) is not modelled.
            a.and(eax, !0x200)
        }),
        sn(|a| {
            a.fld(qword_ptr(B))?;
            a.fstp(tword_ptr(OUT))?;
            a.fld(dword_ptr(A))?;
            a.fld(tword_ptr(OUT))?;
            a.fstp(qword_ptr(OUT + 16))?;
            a.fstp(tword_ptr(OUT + 32))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fldz()?;
            a.fld1()?;
            a.fxch(st0, st1)?;
            a.fstp(qword_ptr(OUT))?;
            a.fstp(qword_ptr(OUT + 8))?;
            a.fnstcw(word_ptr(OUT + 16))?;
            a.fnstsw(ax)
        }),
    ] {
        run(&s, EDGES_F64, ALL_RC, 300, |r| r.next());
    }
}

#[test]
fn classify_and_compare() {
    for (i, s) in [
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fxam()?;
            a.fnstsw(ax)?;
            a.fstp(st0)
        }),
        sn(|a| {
            a.fxam()?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fabs()?;
            a.fld(qword_ptr(B))?;
            a.fchs()?;
            a.fstp(qword_ptr(OUT))?;
            a.fstp(qword_ptr(OUT + 8))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(B))?;
            a.fld(qword_ptr(A))?;
            a.fucomi(st0, st1)?;
            a.fstp(st0)?;
            a.fstp(st0)?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(B))?;
            a.fld(qword_ptr(A))?;
            a.fucomip(st0, st1)?;
            a.fstp(st0)?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(B))?;
            a.fld(qword_ptr(A))?;
            a.fcomip(st0, st1)?;
            a.fstp(st0)?;
            a.fnstsw(ax)
        }),
        // printf's long double test: |x| against LDBL_MAX.
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fabs()?;
            a.fld(tword_ptr(OUT))?;
            a.fxch(st0, st1)?;
            a.fucomip(st0, st1)?;
            a.fstp(st0)?;
            a.fnstsw(ax)
        }),
    ]
    .into_iter()
    .enumerate()
    {
        // The first two read the codes FXAM just set; the others end with FSTP.
        let vs = if i < 2 { VendorSpecific::none() } else { cc_undefined() };
        let mut emu = Emu::new(&s);
        let mut rng = Rng::new(4);
        // pagelab saturates LDBL_MAX to DBL_MAX, so |x| = DBL_MAX compares equal to it.
        let edges: Vec<u64> = EDGES_F64.iter().copied().filter(|&x| f64::from_bits(x).abs() != f64::MAX).collect();
        for &x in &edges {
            for &y in &edges {
                let mut st = random_state(&mut rng);
                st.write_u64(A, x);
                st.write_u64(B, y);
                st.write(CW, &0x037fu16.to_le_bytes());
                // LDBL_MAX
                st.write(OUT, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x7f]);
                check_vendor(&s, &mut emu, &st, 0, &vs);
            }
        }
    }
}

#[test]
fn arithmetic_in_double_precision() {
    // FCW: all masked, PC = 53 bits, each rounding control.
    let cws: &[u16] = &[0x027f, 0x067f, 0x0a7f, 0x0e7f];
    let finite: Vec<u64> =
        EDGES_F64.iter().copied().filter(|&x| f64::from_bits(x).is_finite() && !f64::from_bits(x).is_subnormal()).filter(|&x| {
            let v = f64::from_bits(x).abs();
            v == 0.0 || (1e-100..1e100).contains(&v)
        }).collect();
    let ops: Vec<Snippet> = vec![
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fadd(qword_ptr(B))?;
            a.fstp(qword_ptr(OUT))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fsub(qword_ptr(B))?;
            a.fstp(qword_ptr(OUT))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fmul(qword_ptr(B))?;
            a.fstp(qword_ptr(OUT))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fdiv(qword_ptr(B))?;
            a.fstp(qword_ptr(OUT))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fdivr(qword_ptr(B))?;
            a.fstp(qword_ptr(OUT))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fld(qword_ptr(B))?;
            a.faddp(st1, st0)?;
            a.fstp(qword_ptr(OUT))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fld(qword_ptr(B))?;
            a.fsubrp(st1, st0)?;
            a.fstp(qword_ptr(OUT))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fld(qword_ptr(B))?;
            a.fdivp(st1, st0)?;
            a.fstp(qword_ptr(OUT))?;
            a.fnstsw(ax)
        }),
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fld(qword_ptr(B))?;
            a.fmul_2(st0, st1)?;
            a.fstp(qword_ptr(OUT))?;
            a.fstp(qword_ptr(OUT + 8))?;
            a.fnstsw(ax)
        }),
    ];
    for s in &ops {
        // C1 (round-up indicator) is not modelled: mask it out of AX. The snippet's bytes
        // are position-dependent but land at the same address again.
        let masked = asm(|a| {
            a.db(&s.code)?;
            a.and(eax, !0x200)
        });
        run(&masked, &finite, cws, 500, nice);
    }
}

#[test]
fn integers() {
    for s in [
        sn(|a| {
            a.fld(qword_ptr(A))?;
            a.fistp(qword_ptr(OUT))?;
            a.fld(qword_ptr(A))?;
            a.fistp(dword_ptr(OUT + 8))?;
            a.fld(qword_ptr(A))?;
            a.fistp(word_ptr(OUT + 12))?;
            a.fld(qword_ptr(B))?;
            a.fisttp(qword_ptr(OUT + 16))?;
            a.fnstsw(ax)?;
            a.and(eax, !0x200)
        }),
        sn(|a| {
            a.fild(dword_ptr(A))?;
            a.fild(word_ptr(B))?;
            a.fstp(qword_ptr(OUT))?;
            a.fstp(qword_ptr(OUT + 8))?;
            a.fnstsw(ax)
        }),
    ] {
        let mut edges = EDGES_F64.to_vec();
        edges.extend([2.5f64, -2.5, 3.5, 32767.5, -32768.4, 2147483647.4, 1e18, -9.2e18].map(f64::to_bits));
        run(&s, &edges, ALL_RC, 500, |r| {
            if r.below(2) == 0 {
                ((r.below(2001) as f64 - 1000.0) / 8.0).to_bits()
            } else {
                r.operand() & 0x001f_ffff_ffff_ffff
            }
        });
    }
}

/// FILD m64 of integers a double holds exactly (larger ones round in pagelab).
#[test]
fn fild_m64() {
    let s = sn(|a| {
        a.fild(qword_ptr(A))?;
        a.fstp(qword_ptr(OUT))?;
        a.fnstsw(ax)
    });
    let edges: Vec<u64> = [0i64, 1, -1, 1 << 53, -(1 << 53), 12345, i32::MIN as i64].iter().map(|&v| v as u64).collect();
    run(&s, &edges, ALL_RC, 300, |r| ((r.next() as i64) >> 11) as u64);
}
