//! The one CPU pagelab models: its identity (CPUID) and every choice it makes where the SDM
//! says "undefined" or Intel and AMD differ (docs/cpu-model.md is the readable table).
//!
//! pagelab is a GenuineIntel CPU. Wherever the architecture leaves a result open, pagelab
//! does what recent Intel cores do, so CPUID and behaviour agree, and it does so from this
//! definition alone: no result ever depends on the host CPU, so a run is the same on an
//! Intel or an AMD host. The instruction-level differential tests compare these choices
//! with the host only when the host is of the same vendor ([`VENDOR`]); elsewhere they mask
//! them and say so (tests/src/insn.rs `VendorSpecific`).
//!
//! The choices, family by family (each handler's comment points back here):
//!
//! | where | what the SDM leaves open | pagelab (as Intel) |
//! |---|---|---|
//! | SHL/SHR/SAR/ROL/ROR | OF for a masked count > 1; AF for any count; CF of SHL/SHR when the count ≥ the operand width (8/16-bit) | OF from the count-1 formula on the final result; AF = 0; CF = the last bit shifted out (0 past the width) |
//! | RCL/RCR | OF for a masked count > 1; a masked count that is a multiple of 9 (8-bit) or 17 (16-bit) | OF from the count-1 formula; no rotation and *no flag change* (AMD writes OF) |
//! | SHLD/SHRD | OF for count > 1; 16-bit count > 16 | OF from the sign change; the 48-bit value dst:src:dst is shifted |
//! | BSF/BSR | destination and CF/OF/SF/AF/PF for a zero source; CF/OF/SF/AF for a non-zero one | zero source: destination (all 64 bits) and every flag but ZF unchanged, ZF = 1; non-zero: CF = OF = SF = AF = 0, PF from the index |
//! | MUL/IMUL | SF, ZF, AF, PF | SF, ZF, PF of the low half of the product; AF = 0 |
//! | DIV/IDIV | all six arithmetic flags | unchanged |
//! | AND/OR/XOR/TEST, ANDN, BEXTR, BLS* | AF (and PF for the BMI1 group) | AF = 0, PF from the result |
//! | BSWAP r16 | the result | the low word is cleared |
//! | REP string with a 0x67 prefix and ECX = 0 | whether RCX/RSI/RDI are written | written back zero-extended: RCX always, RSI for MOVS, RDI for MOVS/STOS ([`REP_A32_ZERO_COUNT_WRITES_BACK`]) |
//! | FXSAVE | MXCSR_MASK; FOP/FIP/FDP; reserved bytes | MXCSR_MASK = [`MXCSR_MASK`] (no MM bit, which is AMD's); FOP/FIP/FDP stored as 0 (pagelab does not track the last x87 instruction); every reserved byte of 0..416 written as 0; 416..512 left as they were |
//! | x87 C0/C2/C3 after an instruction that leaves them undefined | | unchanged |
//! | x87 C1 as the round-up indicator | | not modelled: left as the stack-fault rules set it |
//!
//! CPUID reports exactly what is implemented: the x86-64 baseline (SSE, SSE2, FXSR, CX8,
//! CMPXCHG16B, CMOV...), POPCNT, LZCNT (ABM), BMI1 (ANDN BEXTR BLSI BLSMSK BLSR TZCNT), NX,
//! 1 GiB pages, RDTSCP; no SSE3 or later, no AVX and no OSXSAVE, so glibc takes its SSE2
//! paths everywhere. Leaf 0x80000008 reports MAXPHYADDR and 48-bit linear addresses.

use super::MAXPHYADDR;

/// CPUID.0: the vendor pagelab is.
pub const VENDOR: &str = "GenuineIntel";

/// The brand string of CPUID 0x80000002-4 (48 bytes, space-padded).
pub const BRAND: &str = "PagelabVirtCPU";

/// CPUID.1:EAX: family 6, model 0x3a, stepping 9.
pub const SIGNATURE: u32 = 0x0003_06a9;

/// MXCSR bits that exist (FXSAVE's MXCSR_MASK, DAZ included; Intel's value: AMD cores add
/// bit 17, MM, the misaligned-exception mask).
pub const MXCSR_MASK: u32 = 0xffff;

/// A REP string instruction with 32-bit addressing and ECX = 0 still writes RCX (and the
/// pointers it steps: RSI for MOVS, RDI for MOVS and STOS) back zero-extended, as Intel's
/// fast-string microcode does; AMD cores leave their upper halves alone.
pub const REP_A32_ZERO_COUNT_WRITES_BACK: bool = true;

/// CPUID.1:ECX, CPUID.7.0:EBX and CPUID.80000001:ECX bits pagelab sets.
mod bit {
    pub const ECX1_CX16: u32 = 1 << 13;
    pub const ECX1_POPCNT: u32 = 1 << 23;
    pub const EBX7_BMI1: u32 = 1 << 3;
    pub const ECX81_LAHF: u32 = 1 << 0;
    pub const ECX81_ABM: u32 = 1 << 5;
}

/// The CPUID leaf `leaf`, sub-leaf `sub`.
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    fn s(b: &[u8]) -> u32 {
        u32::from_le_bytes(b.try_into().unwrap())
    }
    let v = VENDOR.as_bytes();
    let brand = {
        let mut b = [b' '; 48];
        b[..BRAND.len()].copy_from_slice(BRAND.as_bytes());
        b
    };
    let brand_leaf = |n: usize| -> [u32; 4] { std::array::from_fn(|i| s(&brand[16 * n + 4 * i..16 * n + 4 * i + 4])) };
    match leaf {
        // Max basic leaf; the vendor string in EBX, EDX, ECX order.
        0 => [0xd, s(&v[0..4]), s(&v[8..12]), s(&v[4..8])],
        1 => {
            let ebx = 0x0000_0800; // CLFLUSH line size 8*8 = 64
            let ecx = bit::ECX1_CX16 | bit::ECX1_POPCNT;
            // FPU TSC MSR PAE CX8 SEP PGE CMOV CLFSH MMX FXSR SSE SSE2.
            let edx = 1 << 0 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 8 | 1 << 11 | 1 << 13 | 1 << 15 | 1 << 19 | 1 << 23 | 1 << 24 | 1 << 25 | 1 << 26;
            [SIGNATURE, ebx, ecx, edx]
        }
        // Cache descriptors: none (leaf 4 answers).
        2 => [0x0000_0001, 0, 0, 0],
        4 => match sub {
            // L1d 32K 8-way, L1i 32K, L2 256K, L3 8M: type, level, ways, partitions, line, sets.
            0 => [0x121, 0x01c0_003f, 63, 0],
            1 => [0x122, 0x01c0_003f, 63, 0],
            2 => [0x143, 0x01c0_003f, 511, 0],
            3 => [0x163, 0x03c0_003f, 8191, 0x6],
            _ => [0; 4],
        },
        7 if sub == 0 => [0, bit::EBX7_BMI1, 0, 0],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        // LAHF/SAHF in 64-bit mode, LZCNT; SYSCALL, NX, 1 GiB pages, RDTSCP, LM.
        0x8000_0001 => [0, 0, bit::ECX81_LAHF | bit::ECX81_ABM, 1 << 11 | 1 << 20 | 1 << 26 | 1 << 27 | 1 << 29],
        0x8000_0002 => brand_leaf(0),
        0x8000_0003 => brand_leaf(1),
        0x8000_0004 => brand_leaf(2),
        0x8000_0006 => [0, 0, 0x0100_6040, 0],
        0x8000_0008 => [(48 << 8) | MAXPHYADDR as u32, 0, 0, 0],
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_and_brand_read_back() {
        let r = cpuid(0, 0);
        let mut v = Vec::new();
        for w in [r[1], r[3], r[2]] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(v, VENDOR.as_bytes());
        let mut b = Vec::new();
        for l in 0x8000_0002..=0x8000_0004 {
            for w in cpuid(l, 0) {
                b.extend_from_slice(&w.to_le_bytes());
            }
        }
        assert_eq!(String::from_utf8(b).unwrap().trim_end(), BRAND);
    }
}
