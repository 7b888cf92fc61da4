//! Guest memory access from the CPU: every access goes through the TLB (a hit) or the page
//! walk (a miss). An access that straddles a page boundary translates both pages before any
//! byte is read or written, so a fault on the second page leaves memory untouched.

use super::{Exception, Exec};
use mmu::{Access, AccessKind, WalkFault};

/// Where an access of `len` bytes lands in physical memory: one run, or two for a straddle.
#[derive(Clone, Copy, Debug)]
pub enum Loc {
    One(u64),
    /// First part at .0 with .1 bytes, the rest at .2.
    Two(u64, u32, u64),
}

/// What an access that hit a stale TLB entry under `--check-tlb` returns to stop its
/// instruction. Never delivered: the fetch loop sees `Tlb::stale` and exits with
/// `Exit::StaleTlb` instead (`decode::stop_exit`), so the value only has to be a fault.
pub(crate) const STALE_TLB: Exception = Exception::GeneralProtection(0);

pub fn fault_to_exception(f: WalkFault) -> Exception {
    match f {
        WalkFault::PageFault { addr, code } => Exception::PageFault { addr, code: code.bits() },
        WalkFault::NonCanonical { .. } => Exception::GeneralProtection(0),
    }
}

impl Exec<'_> {
    #[inline(always)]
    fn access(&self, kind: AccessKind) -> Access {
        Access { kind, user: self.s.cpl == 3, implicit: false, ac: self.s.rflags & super::flags::AC != 0 }
    }

    /// Translates one byte address.
    #[inline(always)]
    pub fn translate(&mut self, va: u64, kind: AccessKind) -> Result<u64, Exception> {
        let acc = self.access(kind);
        if let Some(pa) = self.tlb.lookup(&self.s.ctl, va, acc) {
            return Ok(pa);
        }
        self.translate_miss(va, acc)
    }

    /// The TLB missed: walk (and fill). Kept out of line so the hit path inlines small.
    /// With `--check-tlb` every hit comes this way (see `mmu::tlb`), and a stale one stops
    /// the instruction before it changes anything.
    #[cold]
    #[inline(never)]
    fn translate_miss(&mut self, va: u64, acc: Access) -> Result<u64, Exception> {
        let pa = self.tlb.translate_missed(self.mem, &self.s.ctl, va, acc).map_err(fault_to_exception)?;
        if self.tlb.stale.is_some() {
            return Err(STALE_TLB);
        }
        Ok(pa)
    }

    /// The physical address of an access of `len` bytes at `va` if it lies in one page and
    /// the TLB has a translation permitting it; else None, and nothing was counted as a miss:
    /// the specialised handlers then run their generic handler, which translates (walking
    /// on a miss), or faults, exactly as if the fast path had not been tried.
    #[inline(always)]
    pub fn hit(&mut self, va: u64, len: u32, kind: AccessKind) -> Option<u64> {
        if (va & 0xfff) as u32 + len > 4096 {
            return None;
        }
        let acc = self.access(kind);
        self.tlb.probe(&self.s.ctl, va, acc)
    }

    /// Reads `S` bytes at physical `pa` (an address `hit` returned), zero-extended.
    #[inline(always)]
    pub fn load<const S: u32>(&self, pa: u64) -> u64 {
        self.read_loc_sized(Loc::One(pa), S)
    }

    /// Writes the low `S` bytes of `v` at physical `pa` (an address `hit` returned for write).
    #[inline(always)]
    pub fn store<const S: u32>(&mut self, pa: u64, v: u64) {
        self.write_loc_sized(Loc::One(pa), S, v)
    }

    /// Translates an access of `len` (1..=16, or up to 4096 for block moves) bytes at `va`.
    #[inline(always)]
    pub fn locate(&mut self, va: u64, len: u32, kind: AccessKind) -> Result<Loc, Exception> {
        let off = (va & 0xfff) as u32;
        if off + len <= 4096 {
            return Ok(Loc::One(self.translate(va, kind)?));
        }
        self.locate_split(va, len, kind)
    }

    #[cold]
    fn locate_split(&mut self, va: u64, len: u32, kind: AccessKind) -> Result<Loc, Exception> {
        let first = 4096 - (va & 0xfff) as u32;
        let a = self.translate(va, kind)?;
        let next = va.wrapping_add(first as u64);
        let b = self.translate(next, kind)?;
        let _ = len;
        Ok(Loc::Two(a, first, b))
    }

    #[inline(always)]
    pub fn read_loc<const N: usize>(&self, loc: Loc) -> [u8; N] {
        match loc {
            Loc::One(pa) => self.mem.read_n::<N>(pa),
            Loc::Two(a, n, b) => {
                let mut out = [0u8; N];
                let n = n as usize;
                self.mem.read(mmu::PhysAddr::new(a), &mut out[..n]);
                self.mem.read(mmu::PhysAddr::new(b), &mut out[n..]);
                out
            }
        }
    }

    #[inline(always)]
    pub fn write_loc<const N: usize>(&mut self, loc: Loc, v: [u8; N]) {
        match loc {
            Loc::One(pa) => self.mem.write_n::<N>(pa, v),
            Loc::Two(a, n, b) => {
                let n = n as usize;
                self.mem.write(mmu::PhysAddr::new(a), &v[..n]);
                self.mem.write(mmu::PhysAddr::new(b), &v[n..]);
            }
        }
    }

    /// Reads `size` (1, 2, 4 or 8) bytes at a located place, zero-extended.
    #[inline(always)]
    pub fn read_loc_sized(&self, loc: Loc, size: u32) -> u64 {
        match size {
            1 => self.read_loc::<1>(loc)[0] as u64,
            2 => u16::from_le_bytes(self.read_loc(loc)) as u64,
            4 => u32::from_le_bytes(self.read_loc(loc)) as u64,
            _ => u64::from_le_bytes(self.read_loc(loc)),
        }
    }

    #[inline(always)]
    pub fn write_loc_sized(&mut self, loc: Loc, size: u32, v: u64) {
        match size {
            1 => self.write_loc(loc, [v as u8]),
            2 => self.write_loc(loc, (v as u16).to_le_bytes()),
            4 => self.write_loc(loc, (v as u32).to_le_bytes()),
            _ => self.write_loc(loc, v.to_le_bytes()),
        }
    }

    #[inline(always)]
    pub fn read_sized(&mut self, va: u64, size: u32) -> Result<u64, Exception> {
        let loc = self.locate(va, size, AccessKind::Read)?;
        Ok(self.read_loc_sized(loc, size))
    }

    #[inline(always)]
    pub fn write_sized(&mut self, va: u64, size: u32, v: u64) -> Result<(), Exception> {
        let loc = self.locate(va, size, AccessKind::Write)?;
        self.write_loc_sized(loc, size, v);
        Ok(())
    }

    #[inline(always)]
    pub fn read_u64(&mut self, va: u64) -> Result<u64, Exception> {
        self.read_sized(va, 8)
    }
    #[inline(always)]
    pub fn write_u64(&mut self, va: u64, v: u64) -> Result<(), Exception> {
        self.write_sized(va, 8, v)
    }
    pub fn read_u128(&mut self, va: u64) -> Result<u128, Exception> {
        let loc = self.locate(va, 16, AccessKind::Read)?;
        Ok(u128::from_le_bytes(self.read_loc(loc)))
    }
    pub fn write_u128(&mut self, va: u64, v: u128) -> Result<(), Exception> {
        let loc = self.locate(va, 16, AccessKind::Write)?;
        self.write_loc(loc, v.to_le_bytes());
        Ok(())
    }
    /// Reads `buf.len()` bytes (any length) at `va`, page by page; all-or-nothing on faults
    /// is *not* guaranteed, so callers use it only for reads.
    pub fn read_bytes(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Exception> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
            let pa = self.translate(a, AccessKind::Read)?;
            self.mem.read(mmu::PhysAddr::new(pa), &mut buf[done..done + n]);
            done += n;
        }
        Ok(())
    }
    /// Writes `buf` at `va`, translating every page for write before writing any byte.
    pub fn write_bytes(&mut self, va: u64, buf: &[u8]) -> Result<(), Exception> {
        let mut pas = Vec::new();
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
            pas.push((self.translate(a, AccessKind::Write)?, done, n));
            done += n;
        }
        for (pa, off, n) in pas {
            self.mem.write(mmu::PhysAddr::new(pa), &buf[off..off + n]);
        }
        Ok(())
    }
}
