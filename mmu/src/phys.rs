//! Guest physical memory: a flat byte array, lazily backed by host memory.
//!
//! The backing is one zeroed allocation of the configured size; the host kernel only commits
//! pages that are touched, so a 4 GiB guest costs what it uses. Reads outside memory return
//! all-ones (as an unclaimed bus read does) and writes there are dropped.
//!
//! Code pages can be *watched*: the first write to a watched frame, by the CPU or by the
//! guest kernel, un-watches it and records it in a log that the decoded-instruction cache
//! drains, which is how self-modifying code and reused code frames stay coherent.

use crate::addr::PhysAddr;

pub struct PhysMem {
    bytes: Vec<u8>,
    /// One bit per 4 KiB frame, set while the frame is watched. A plain word array: the test
    /// sits on every guest write (and every A/D update), so it is kept to a shift and a mask.
    watched: Vec<u64>,
    /// Frames written while watched, in order, not yet drained.
    written_watched: Vec<u64>,
}

impl PhysMem {
    /// `size` bytes of zeroed guest memory (rounded up to 4 KiB).
    pub fn new(size: u64) -> Self {
        let size = (size + 0xfff) & !0xfff;
        let frames = (size >> 12) as usize;
        Self { bytes: vec![0u8; size as usize], watched: vec![0; frames.div_ceil(64)], written_watched: Vec::new() }
    }
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    pub fn contains(&self, pa: PhysAddr, len: u64) -> bool {
        pa.as_u64().checked_add(len).is_some_and(|end| end <= self.size())
    }

    #[inline]
    fn note_write(&mut self, pa: u64, len: usize) {
        let first = pa >> 12;
        let last = (pa + len.max(1) as u64 - 1) >> 12;
        for f in first..=last {
            if self.is_watched(f) {
                self.watched[(f / 64) as usize] &= !(1 << (f % 64));
                self.written_watched.push(f);
            }
        }
    }

    /// Marks a frame as holding decoded code.
    pub fn watch(&mut self, frame: u64) {
        if frame < self.size() >> 12 {
            self.watched[(frame / 64) as usize] |= 1 << (frame % 64);
        }
    }
    #[inline]
    pub fn is_watched(&self, frame: u64) -> bool {
        self.watched.get((frame / 64) as usize).is_some_and(|w| w >> (frame % 64) & 1 != 0)
    }
    /// True if any watched frame was written since the last drain.
    #[inline]
    pub fn has_written_watched(&self) -> bool {
        !self.written_watched.is_empty()
    }
    /// Takes the log of watched frames that were written.
    pub fn drain_written_watched(&mut self) -> Vec<u64> {
        core::mem::take(&mut self.written_watched)
    }

    pub fn read(&self, pa: PhysAddr, buf: &mut [u8]) {
        let a = pa.as_u64();
        if self.contains(pa, buf.len() as u64) {
            buf.copy_from_slice(&self.bytes[a as usize..a as usize + buf.len()]);
        } else {
            buf.fill(0xff);
        }
    }
    pub fn write(&mut self, pa: PhysAddr, buf: &[u8]) {
        let a = pa.as_u64();
        if self.contains(pa, buf.len() as u64) {
            self.note_write(a, buf.len());
            self.bytes[a as usize..a as usize + buf.len()].copy_from_slice(buf);
        }
    }
    pub fn fill(&mut self, pa: PhysAddr, len: u64, byte: u8) {
        let a = pa.as_u64();
        if self.contains(pa, len) {
            self.note_write(a, len as usize);
            self.bytes[a as usize..(a + len) as usize].fill(byte);
        }
    }
    /// Copies `len` bytes between two physical ranges (they may overlap).
    pub fn copy_within(&mut self, src: PhysAddr, dst: PhysAddr, len: u64) {
        if self.contains(src, len) && self.contains(dst, len) {
            self.note_write(dst.as_u64(), len as usize);
            let s = src.as_u64() as usize;
            self.bytes.copy_within(s..s + len as usize, dst.as_u64() as usize);
        }
    }
    /// A borrowed view of physical bytes, if in range.
    pub fn slice(&self, pa: PhysAddr, len: usize) -> Option<&[u8]> {
        if self.contains(pa, len as u64) {
            Some(&self.bytes[pa.as_u64() as usize..pa.as_u64() as usize + len])
        } else {
            None
        }
    }

    /// The 512 entries of the page-table frame at `table` (4 KiB aligned) for in-place
    /// updates, in guest (little-endian) byte order — the host is x86-64, so a value is
    /// used as read. None when the frame is outside memory or the backing is not 8-byte
    /// aligned (callers then go entry by entry). A watched frame is noted as written, as
    /// any write to it would be.
    pub fn table_mut(&mut self, table: PhysAddr) -> Option<&mut [u64; 512]> {
        let a = table.as_u64();
        if a & 0xfff != 0 || !self.contains(table, 4096) {
            return None;
        }
        self.note_write(a, 4096);
        // SAFETY: u8 to u64 is sound for any bytes (every bit pattern is a u64), and
        // align_to_mut only puts correctly aligned memory in the middle slice.
        let (pre, words, _) = unsafe { self.bytes[a as usize..a as usize + 4096].align_to_mut::<u64>() };
        if !pre.is_empty() || cfg!(target_endian = "big") {
            return None;
        }
        words.try_into().ok()
    }

    /// A read of N bytes that does not straddle the end of memory.
    #[inline(always)]
    pub fn read_n<const N: usize>(&self, pa: u64) -> [u8; N] {
        match self.bytes.get(pa as usize..pa as usize + N) {
            Some(s) => s.try_into().unwrap(),
            None => [0xff; N],
        }
    }
    #[inline(always)]
    pub fn write_n<const N: usize>(&mut self, pa: u64, v: [u8; N]) {
        let (first, last) = (pa >> 12, pa.wrapping_add(N as u64 - 1) >> 12);
        if self.is_watched(first) || (last != first && self.is_watched(last)) {
            self.note_write(pa, N);
        }
        if let Some(s) = self.bytes.get_mut(pa as usize..pa as usize + N) {
            s.copy_from_slice(&v);
        }
    }
    #[inline(always)]
    pub fn read_u8(&self, pa: PhysAddr) -> u8 {
        self.read_n::<1>(pa.as_u64())[0]
    }
    #[inline(always)]
    pub fn read_u16(&self, pa: PhysAddr) -> u16 {
        u16::from_le_bytes(self.read_n(pa.as_u64()))
    }
    #[inline(always)]
    pub fn read_u32(&self, pa: PhysAddr) -> u32 {
        u32::from_le_bytes(self.read_n(pa.as_u64()))
    }
    #[inline(always)]
    pub fn read_u64(&self, pa: PhysAddr) -> u64 {
        u64::from_le_bytes(self.read_n(pa.as_u64()))
    }
    #[inline(always)]
    pub fn write_u8(&mut self, pa: PhysAddr, v: u8) {
        self.write_n(pa.as_u64(), [v])
    }
    #[inline(always)]
    pub fn write_u16(&mut self, pa: PhysAddr, v: u16) {
        self.write_n(pa.as_u64(), v.to_le_bytes())
    }
    #[inline(always)]
    pub fn write_u32(&mut self, pa: PhysAddr, v: u32) {
        self.write_n(pa.as_u64(), v.to_le_bytes())
    }
    #[inline(always)]
    pub fn write_u64(&mut self, pa: PhysAddr, v: u64) {
        self.write_n(pa.as_u64(), v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_mut_is_the_frame_as_entries() {
        let mut m = PhysMem::new(3 << 12);
        m.write_u64(PhysAddr::new(0x1008), 0x1234);
        m.watch(1);
        let t = m.table_mut(PhysAddr::new(0x1000)).unwrap();
        assert_eq!(t[1], 0x1234);
        t[511] = 0xfeed;
        assert_eq!(m.read_u64(PhysAddr::new(0x1ff8)), 0xfeed);
        assert_eq!(m.drain_written_watched(), vec![1], "a watched table is noted as written");
        assert!(m.table_mut(PhysAddr::new(0x1008)).is_none(), "not a frame start");
        assert!(m.table_mut(PhysAddr::new(3 << 12)).is_none(), "outside memory");
    }

    #[test]
    fn watched_frames_are_logged_once() {
        let mut m = PhysMem::new(3 << 12);
        m.watch(1);
        m.watch(2);
        assert!(m.is_watched(1) && !m.is_watched(0) && !m.is_watched(99));
        m.write_u64(PhysAddr::new(0x10), 1);
        assert!(!m.has_written_watched());
        m.write_u64(PhysAddr::new(0x1ffc), 0x1122_3344_5566_7788); // straddles frames 1 and 2
        m.write_u8(PhysAddr::new(0x1000), 0);
        assert_eq!(m.drain_written_watched(), vec![1, 2]);
        assert!(!m.is_watched(1) && !m.is_watched(2));
        assert_eq!(m.read_u64(PhysAddr::new(0x3000 - 4)), u64::MAX, "a read past the end is all-ones");
    }
}
