//! RFLAGS bits and the flag results of arithmetic (SDM Vol. 1, 3.4.3 and appendix A).
//! Flags are computed eagerly and exactly; flags an instruction leaves undefined are set the
//! way the helpers below set them, and tests compare only defined flags.

pub const CF: u64 = 1 << 0;
pub const RESERVED1: u64 = 1 << 1;
pub const PF: u64 = 1 << 2;
pub const AF: u64 = 1 << 4;
pub const ZF: u64 = 1 << 6;
pub const SF: u64 = 1 << 7;
pub const TF: u64 = 1 << 8;
pub const IF: u64 = 1 << 9;
pub const DF: u64 = 1 << 10;
pub const OF: u64 = 1 << 11;
pub const AC: u64 = 1 << 18;
pub const ID: u64 = 1 << 21;
/// The six status flags arithmetic writes.
pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
/// What POPF may change at CPL 3 (IOPL and IF are kept; VM/RF are cleared).
pub const USER_WRITABLE: u64 = ARITH | TF | DF | AC | ID | (1 << 14);

/// Mask of an operand of `size` bytes.
#[inline(always)]
pub const fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

#[inline(always)]
pub const fn sign_bit(size: u32) -> u64 {
    1u64 << (size * 8 - 1)
}

/// Sign-extends the low `size` bytes of `v`.
#[inline(always)]
pub const fn sext(v: u64, size: u32) -> u64 {
    let sh = 64 - size * 8;
    (((v << sh) as i64) >> sh) as u64
}

#[inline(always)]
pub fn parity(res: u64) -> u64 {
    // Fold the low byte to a nibble with the same parity, then look its parity up in a
    // 16-bit table (bit n of 0x9669 = 1 iff n has an even number of ones). Cheaper than
    // count_ones on hosts without POPCNT, and branch-free.
    let b = res as u8;
    let n = (b ^ (b >> 4)) & 0xf;
    ((0x9669u64 >> n) & 1) << 2
}

/// SF, ZF and PF of a result of `size` bytes.
#[inline(always)]
pub fn szp(res: u64, size: u32) -> u64 {
    let r = res & mask(size);
    let mut f = parity(r);
    if r == 0 {
        f |= ZF;
    }
    if r & sign_bit(size) != 0 {
        f |= SF;
    }
    f
}

/// Flags of `a + b + carry` = `res` (all masked to `size`).
#[inline(always)]
pub fn add(a: u64, b: u64, carry: u64, res: u64, size: u32) -> u64 {
    let m = mask(size);
    let (a, b, res) = (a & m, b & m, res & m);
    let cf = if carry != 0 { res <= a } else { res < a };
    let mut f = szp(res, size) | ((a ^ b ^ res) & AF);
    if cf {
        f |= CF;
    }
    if (a ^ res) & (b ^ res) & sign_bit(size) != 0 {
        f |= OF;
    }
    f
}

/// Flags of `a - b - borrow` = `res` (all masked to `size`).
#[inline(always)]
pub fn sub(a: u64, b: u64, borrow: u64, res: u64, size: u32) -> u64 {
    let m = mask(size);
    let (a, b, res) = (a & m, b & m, res & m);
    let cf = if borrow != 0 { a <= b } else { a < b };
    let mut f = szp(res, size) | ((a ^ b ^ res) & AF);
    if cf {
        f |= CF;
    }
    if (a ^ b) & (a ^ res) & sign_bit(size) != 0 {
        f |= OF;
    }
    f
}

/// Flags of a logical operation: CF = OF = 0, AF = 0 (undefined), SF/ZF/PF from the result.
#[inline(always)]
pub fn logic(res: u64, size: u32) -> u64 {
    szp(res, size)
}

/// Evaluates condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc) against `rflags`.
#[inline(always)]
pub fn cond(cc: u8, rflags: u64) -> bool {
    let f = |b: u64| rflags & b != 0;
    let r = match cc >> 1 {
        0 => f(OF),
        1 => f(CF),
        2 => f(ZF),
        3 => f(CF) || f(ZF),
        4 => f(SF),
        5 => f(PF),
        6 => f(SF) != f(OF),
        _ => f(ZF) || (f(SF) != f(OF)),
    };
    r ^ (cc & 1 != 0)
}

/// Replaces the `which` bits of `rflags` by those in `new`.
#[inline(always)]
pub fn set(rflags: &mut u64, which: u64, new: u64) {
    *rflags = (*rflags & !which) | (new & which);
}
