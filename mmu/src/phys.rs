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
use bitvec::prelude::*;

pub struct PhysMem {
    bytes: Vec<u8>,
    watched: BitVec<u64, Lsb0>,
    /// Frames written while watched, in order, not yet drained.
    written_watched: Vec<u64>,
}

impl PhysMem {
    /// `size` bytes of zeroed guest memory (rounded up to 4 KiB).
    pub fn new(size: u64) -> Self {
        let size = (size + 0xfff) & !0xfff;
        let frames = (size >> 12) as usize;
        Self { bytes: vec![0u8; size as usize], watched: bitvec![u64, Lsb0; 0; frames], written_watched: Vec::new() }
    }
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    pub fn contains(&self, pa: PhysAddr, len: u64) -> bool {
        pa.as_u64().checked_add(len).is_some_and(|end| end <= self.size())
    }

    #[inline]
    fn note_write(&mut self, pa: u64, len: usize) {
        let first = (pa >> 12) as usize;
        let last = ((pa + len.max(1) as u64 - 1) >> 12) as usize;
        for f in first..=last {
            if f < self.watched.len() && self.watched[f] {
                self.watched.set(f, false);
                self.written_watched.push(f as u64);
            }
        }
    }

    /// Marks a frame as holding decoded code.
    pub fn watch(&mut self, frame: u64) {
        if (frame as usize) < self.watched.len() {
            self.watched.set(frame as usize, true);
        }
    }
    #[inline]
    pub fn is_watched(&self, frame: u64) -> bool {
        self.watched.get(frame as usize).is_some_and(|b| *b)
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
        if self.watched.get((pa >> 12) as usize).is_some_and(|b| *b)
            || self.watched.get(((pa + N as u64 - 1) >> 12) as usize).is_some_and(|b| *b)
        {
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
