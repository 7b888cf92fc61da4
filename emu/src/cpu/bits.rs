//! Shifts, rotates and bit operations: SHL/SAL SHR SAR ROL ROR RCL RCR SHLD SHRD, BT BTS BTR
//! BTC, BSF BSR TZCNT LZCNT POPCNT, BSWAP, and the exchanges XADD CMPXCHG CMPXCHG8B
//! CMPXCHG16B, plus XLAT (SDM Vol. 2).
//!
//! Counts are masked to 5 bits (6 for 64-bit operands); a masked count of 0 changes no flag.
//! What the SDM leaves undefined (OF of multi-bit shifts, RCL/RCR by a multiple of 9 or 17,
//! BSF/BSR of zero, BSWAP r16, AF) is decided in `cpu::model`, as Intel cores do.
//!
//! A LOCK prefix needs no special handling: every instruction executes atomically in this
//! interpreter. Read-modify-write destinations are translated for write before the read
//! (`Exec::resolve_rmw`), so a faulting instruction changes nothing.

use super::exec::{Exec, Handler, Operand, Stop};
use super::flags::{self, mask, sext, sign_bit, AF, ARITH, CF, OF, PF, SF, ZF};
use super::reg::{RAX, RBX, RCX, RDX};
use super::Exception;
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use mmu::AccessKind;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sh {
    Shl,
    Shr,
    Sar,
    Rol,
    Ror,
    Rcl,
    Rcr,
}

pub fn select(ins: &Instruction) -> Option<Handler> {
    Some(match ins.mnemonic() {
        Mnemonic::Shl | Mnemonic::Sal => |e: &mut Exec, i: &Instruction| shift(e, i, Sh::Shl),
        Mnemonic::Shr => |e: &mut Exec, i: &Instruction| shift(e, i, Sh::Shr),
        Mnemonic::Sar => |e: &mut Exec, i: &Instruction| shift(e, i, Sh::Sar),
        Mnemonic::Rol => |e: &mut Exec, i: &Instruction| shift(e, i, Sh::Rol),
        Mnemonic::Ror => |e: &mut Exec, i: &Instruction| shift(e, i, Sh::Ror),
        Mnemonic::Rcl => |e: &mut Exec, i: &Instruction| shift(e, i, Sh::Rcl),
        Mnemonic::Rcr => |e: &mut Exec, i: &Instruction| shift(e, i, Sh::Rcr),
        Mnemonic::Shld => |e: &mut Exec, i: &Instruction| double_shift(e, i, true),
        Mnemonic::Shrd => |e: &mut Exec, i: &Instruction| double_shift(e, i, false),
        Mnemonic::Bt => |e: &mut Exec, i: &Instruction| bit_test(e, i, Mnemonic::Bt),
        Mnemonic::Bts => |e: &mut Exec, i: &Instruction| bit_test(e, i, Mnemonic::Bts),
        Mnemonic::Btr => |e: &mut Exec, i: &Instruction| bit_test(e, i, Mnemonic::Btr),
        Mnemonic::Btc => |e: &mut Exec, i: &Instruction| bit_test(e, i, Mnemonic::Btc),
        Mnemonic::Bsf => |e: &mut Exec, i: &Instruction| bit_scan(e, i, Mnemonic::Bsf),
        Mnemonic::Bsr => |e: &mut Exec, i: &Instruction| bit_scan(e, i, Mnemonic::Bsr),
        Mnemonic::Tzcnt => |e: &mut Exec, i: &Instruction| bit_scan(e, i, Mnemonic::Tzcnt),
        Mnemonic::Lzcnt => |e: &mut Exec, i: &Instruction| bit_scan(e, i, Mnemonic::Lzcnt),
        Mnemonic::Popcnt => popcnt,
        Mnemonic::Andn | Mnemonic::Bextr | Mnemonic::Blsi | Mnemonic::Blsmsk | Mnemonic::Blsr => bmi1,
        Mnemonic::Bswap => bswap,
        Mnemonic::Xadd => xadd,
        Mnemonic::Cmpxchg => cmpxchg,
        Mnemonic::Cmpxchg8b => |e: &mut Exec, i: &Instruction| cmpxchg_wide(e, i, 8),
        Mnemonic::Cmpxchg16b => |e: &mut Exec, i: &Instruction| cmpxchg_wide(e, i, 16),
        Mnemonic::Xlatb => xlat,
        _ => return None,
    })
}

/// The count operand of a shift: CL or an immediate (the `,1` forms decode as immediate 1).
#[inline(always)]
fn count(e: &Exec, ins: &Instruction, i: u32) -> u64 {
    match ins.op_kind(i) {
        OpKind::Register => e.get_reg(ins.op_register(i)),
        _ => ins.immediate(i),
    }
}

#[inline(always)]
fn count_mask(size: u32) -> u64 {
    if size == 8 {
        0x3f
    } else {
        0x1f
    }
}

/// Result and flags of a shift or rotate of the `size`-byte `a` by the masked count `c`
/// (non-zero), with carry-in `cf`. Returns (result, flags, which flags are written).
fn shift_op(kind: Sh, a: u64, c: u32, cf: u64, size: u32) -> (u64, u64, u64) {
    let bits = size * 8;
    let m = mask(size);
    let a = a & m;
    let msb = |v: u64| (v >> (bits - 1)) & 1;
    let bit = |v: u64, n: u32| if n < 64 { (v >> n) & 1 } else { 0 };
    let status = |res: u64, cf: u64, of: u64| flags::szp(res, size) | if cf != 0 { CF } else { 0 } | if of != 0 { OF } else { 0 };
    match kind {
        Sh::Shl => {
            let res = if c < 64 { a << c } else { 0 } & m;
            let cfo = if c <= bits { bit(a, bits - c) } else { 0 };
            (res, status(res, cfo, msb(res) ^ cfo), ARITH)
        }
        Sh::Shr => {
            let res = if c < 64 { a >> c } else { 0 };
            let cfo = if c <= bits { bit(a, c - 1) } else { 0 };
            (res, status(res, cfo, msb(a)), ARITH)
        }
        Sh::Sar => {
            let sa = sext(a, size) as i64;
            let res = (sa >> c.min(63)) as u64 & m;
            let cfo = ((sa >> (c - 1).min(63)) & 1) as u64;
            (res, status(res, cfo, 0), ARITH)
        }
        Sh::Rol => {
            let r = c % bits;
            let res = if r == 0 { a } else { ((a << r) | (a >> (bits - r))) & m };
            let cfo = res & 1;
            (res, status(0, cfo, msb(res) ^ cfo), CF | OF)
        }
        Sh::Ror => {
            let r = c % bits;
            let res = if r == 0 { a } else { ((a >> r) | (a << (bits - r))) & m };
            let cfo = msb(res);
            (res, status(0, cfo, cfo ^ bit(res, bits - 2)), CF | OF)
        }
        Sh::Rcl | Sh::Rcr => {
            // Rotate the (bits + 1)-bit value CF:a.
            let w_bits = bits + 1;
            let r = if size <= 2 { c % w_bits } else { c };
            let wm = (1u128 << w_bits) - 1;
            let w = ((cf as u128) << bits) | a as u128;
            let w = if r == 0 {
                w
            } else if kind == Sh::Rcl {
                ((w << r) | (w >> (w_bits - r))) & wm
            } else {
                ((w >> r) | (w << (w_bits - r))) & wm
            };
            let res = w as u64 & m;
            let cfo = (w >> bits) as u64 & 1;
            let of = if kind == Sh::Rcl { msb(res) ^ cfo } else { msb(res) ^ bit(res, bits - 2) };
            (res, status(0, cfo, of), CF | OF)
        }
    }
}

fn shift(e: &mut Exec, ins: &Instruction, kind: Sh) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let c = (count(e, ins, 1) & count_mask(size)) as u32;
    let (dst, a) = e.resolve_rmw(ins, 0, size, true)?;
    if c == 0 {
        // No flag changes; a 32-bit register destination is still written (zero-extended).
        e.commit(dst, size, a);
        return Ok(());
    }
    if matches!(kind, Sh::Rcl | Sh::Rcr) && size <= 2 && c.is_multiple_of(size * 8 + 1) {
        // RCL/RCR by a multiple of 9 (or 17): no rotation, and no flag changes at all.
        e.commit(dst, size, a);
        return Ok(());
    }
    let (res, fl, which) = shift_op(kind, a, c, e.s.rflags & CF, size);
    e.commit(dst, size, res);
    // AF is undefined for shifts; it is cleared here.
    e.set_flags(which, fl & !AF);
    Ok(())
}

/// SHLD/SHRD. For 16-bit operands with a count above 16 (undefined), the operands are
/// treated as the 48-bit value dst:src:dst, which is what Intel cores do.
fn double_shift(e: &mut Exec, ins: &Instruction, left: bool) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let bits = size * 8;
    let c = (count(e, ins, 2) & count_mask(size)) as u32;
    let src = e.get_reg(ins.op1_register()) & mask(size);
    let (dst, a) = e.resolve_rmw(ins, 0, size, true)?;
    if c == 0 {
        e.commit(dst, size, a);
        return Ok(());
    }
    let a = a & mask(size);
    let (res, cfo) = if left {
        // dst:src (dst:src:dst for 16-bit), shifted left; the result is the top `bits`.
        let (wide, total) = if size == 2 {
            ((a as u128) << 32 | (src as u128) << 16 | a as u128, 48)
        } else {
            ((a as u128) << bits | src as u128, 2 * bits)
        };
        let res = ((wide << c) >> (total - bits)) as u64 & mask(size);
        (res, (wide >> (total - c)) as u64 & 1)
    } else {
        // src:dst (dst:src:dst for 16-bit), shifted right; the result is the bottom `bits`.
        let wide = if size == 2 { (a as u128) << 32 | (src as u128) << 16 | a as u128 } else { (src as u128) << bits | a as u128 };
        ((wide >> c) as u64 & mask(size), (wide >> (c - 1)) as u64 & 1)
    };
    let of = ((res ^ a) & sign_bit(size)) != 0;
    let fl = flags::szp(res, size) | if cfo != 0 { CF } else { 0 } | if of { OF } else { 0 };
    e.commit(dst, size, res);
    e.set_flags(ARITH, fl);
    Ok(())
}

/// BT/BTS/BTR/BTC. A register bit offset with a memory operand is a signed offset from the
/// operand's address (SDM "Bit(BitBase, BitOffset)"), so the word touched may lie far from it.
fn bit_test(e: &mut Exec, ins: &Instruction, op: Mnemonic) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let bits = (size * 8) as u64;
    let off = match ins.op1_kind() {
        OpKind::Register => e.get_reg(ins.op1_register()),
        _ => ins.immediate(1),
    };
    let write = op != Mnemonic::Bt;
    let n = off & (bits - 1);
    let (place, v) = if ins.op0_kind() == OpKind::Memory {
        let mut va = e.ea(ins);
        if ins.op1_kind() == OpKind::Register {
            let soff = sext(off, size) as i64;
            va = va.wrapping_add(((soff >> bits.trailing_zeros()) * size as i64) as u64);
        }
        let loc = e.locate(va, size, if write { AccessKind::Write } else { AccessKind::Read })?;
        (Operand::Mem { va, loc }, e.read_loc_sized(loc, size))
    } else {
        let (p, v) = e.resolve_rmw(ins, 0, size, write)?;
        (p, v)
    };
    let b = 1u64 << n;
    let new = match op {
        Mnemonic::Bts => v | b,
        Mnemonic::Btr => v & !b,
        Mnemonic::Btc => v ^ b,
        _ => v,
    };
    if write {
        e.commit(place, size, new);
    }
    e.set_flags(CF, if v & b != 0 { CF } else { 0 });
    Ok(())
}

/// BSF/BSR (source 0: ZF = 1, the destination and the other flags unchanged: `cpu::model`) and
/// TZCNT/LZCNT (source 0: the operand size in bits, CF = 1).
fn bit_scan(e: &mut Exec, ins: &Instruction, op: Mnemonic) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let bits = size * 8;
    let v = e.read_op(ins, 1, size)? & mask(size);
    match op {
        Mnemonic::Bsf | Mnemonic::Bsr => {
            if v == 0 {
                e.set_flags(ZF, ZF);
                return Ok(());
            }
            let r = if op == Mnemonic::Bsf { v.trailing_zeros() } else { 63 - v.leading_zeros() };
            e.set_reg(ins.op0_register(), r as u64);
            // CF, OF, SF, AF, PF are undefined; computed from the result here.
            e.set_flags(ARITH, flags::szp(r as u64, size) & PF);
        }
        _ => {
            let r = if op == Mnemonic::Tzcnt {
                if v == 0 {
                    bits
                } else {
                    v.trailing_zeros()
                }
            } else {
                v.leading_zeros() - (64 - bits)
            };
            e.set_reg(ins.op0_register(), r as u64);
            let f = if v == 0 { CF } else { 0 } | if r == 0 { ZF } else { 0 };
            e.set_flags(ARITH, f | (flags::szp(r as u64, size) & (SF | PF)));
        }
    }
    Ok(())
}

fn popcnt(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let v = e.read_op(ins, 1, size)? & mask(size);
    e.set_reg(ins.op0_register(), v.count_ones() as u64);
    e.set_flags(ARITH, if v == 0 { ZF } else { 0 });
    Ok(())
}

/// The BMI1 group's VEX-encoded GPR instructions (SDM Vol. 2: ANDN, BEXTR, BLSI, BLSMSK,
/// BLSR; TZCNT is in `bit_scan`). OF is always cleared; AF and PF are undefined and set as
/// `cpu::model` says (AF = 0, PF from the result).
fn bmi1(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let m = mask(size);
    let (res, cf) = match ins.mnemonic() {
        // ANDN r, vvvv, r/m: !src1 & src2.
        Mnemonic::Andn => {
            let a = e.get_reg(ins.op1_register()) & m;
            let b = e.read_op(ins, 2, size)? & m;
            (!a & b & m, false)
        }
        // BEXTR r, r/m, vvvv: start = vvvv[7:0], length = vvvv[15:8].
        Mnemonic::Bextr => {
            let a = e.read_op(ins, 1, size)? & m;
            let ctl = e.get_reg(ins.op2_register());
            let (start, len) = ((ctl & 0xff) as u32, ((ctl >> 8) & 0xff) as u32);
            let shifted = if start < 64 { a >> start } else { 0 };
            let keep = if len < 64 { (1u64 << len) - 1 } else { u64::MAX };
            (shifted & keep & m, false)
        }
        // BLSI/BLSMSK/BLSR vvvv, r/m: CF = (src != 0) for BLSI, (src == 0) for the others.
        op => {
            let a = e.read_op(ins, 1, size)? & m;
            let r = match op {
                Mnemonic::Blsi => a.wrapping_neg() & a,
                Mnemonic::Blsmsk => a.wrapping_sub(1) ^ a,
                _ => a.wrapping_sub(1) & a,
            } & m;
            (r, if op == Mnemonic::Blsi { a != 0 } else { a == 0 })
        }
    };
    e.set_reg(ins.op0_register(), res);
    let f = flags::szp(res, size) | if cf { CF } else { 0 };
    e.set_flags(ARITH, f);
    Ok(())
}

fn bswap(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let r = ins.op0_register();
    let v = e.get_reg(r);
    let res = match e.op_size(ins, 0) {
        8 => v.swap_bytes(),
        4 => (v as u32).swap_bytes() as u64,
        // BSWAP r16 is undefined; the low word is cleared (`cpu::model`).
        _ => 0,
    };
    e.set_reg(r, res);
    Ok(())
}

fn xadd(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let b = e.get_reg(ins.op1_register());
    let (dst, a) = e.resolve_rmw(ins, 0, size, true)?;
    let r = a.wrapping_add(b) & mask(size);
    // Source gets the old destination first, so XADD r, r leaves the sum.
    e.set_reg(ins.op1_register(), a);
    e.commit(dst, size, r);
    e.set_flags(ARITH, flags::add(a, b, 0, r, size));
    Ok(())
}

/// CMPXCHG: compares the accumulator with the destination. A memory destination is always
/// written (with its old value on failure), as the locked bus cycle does, so a read-only page
/// faults either way.
fn cmpxchg(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let src = e.get_reg(ins.op1_register());
    let (dst, d) = e.resolve_rmw(ins, 0, size, true)?;
    let acc = e.s.gpr[RAX] & mask(size);
    let d = d & mask(size);
    let r = acc.wrapping_sub(d) & mask(size);
    e.set_flags(ARITH, flags::sub(acc, d, 0, r, size));
    if acc == d {
        e.commit(dst, size, src);
    } else {
        if matches!(dst, Operand::Mem { .. }) {
            e.commit(dst, size, d);
        }
        e.set_gpr_sized(RAX, size, d);
    }
    Ok(())
}

/// CMPXCHG8B m64 (EDX:EAX vs m64, ECX:EBX stored) and CMPXCHG16B m128 (RDX:RAX, RCX:RBX;
/// #GP(0) unless 16-byte aligned). Only ZF is written.
fn cmpxchg_wide(e: &mut Exec, ins: &Instruction, n: u32) -> Result<(), Stop> {
    let va = e.ea(ins);
    if n == 16 && va & 15 != 0 {
        return Err(Exception::GeneralProtection(0).into());
    }
    let loc = e.locate(va, n, AccessKind::Write)?;
    let g = &e.s.gpr;
    let (half, hm) = if n == 16 { (64, u64::MAX) } else { (32, 0xffff_ffff) };
    let expect = ((g[RDX] & hm) as u128) << half | (g[RAX] & hm) as u128;
    let new = ((g[RCX] & hm) as u128) << half | (g[RBX] & hm) as u128;
    let cur = if n == 16 { u128::from_le_bytes(e.read_loc::<16>(loc)) } else { u64::from_le_bytes(e.read_loc::<8>(loc)) as u128 };
    let (store, ok) = if cur == expect { (new, true) } else { (cur, false) };
    if n == 16 {
        e.write_loc(loc, store.to_le_bytes());
    } else {
        e.write_loc(loc, (store as u64).to_le_bytes());
    }
    if !ok {
        e.set_gpr_sized(RAX, n / 2, cur as u64 & hm);
        e.set_gpr_sized(RDX, n / 2, (cur >> half) as u64 & hm);
    }
    e.set_flags(ZF, if ok { ZF } else { 0 });
    Ok(())
}

/// XLAT: AL = [seg:RBX + AL].
fn xlat(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let base = match ins.memory_segment() {
        Register::FS => e.s.fs_base,
        Register::GS => e.s.gs_base,
        _ => 0,
    };
    let off = e.s.gpr[RBX].wrapping_add(e.s.gpr[RAX] & 0xff);
    let off = if ins.memory_base() == Register::EBX { off & 0xffff_ffff } else { off };
    let v = e.read_sized(base.wrapping_add(off), 1)?;
    e.set_gpr_sized(RAX, 1, v);
    Ok(())
}
