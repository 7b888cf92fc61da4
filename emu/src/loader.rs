//! The ELF loader (Linux: fs/binfmt_elf.c load_elf_binary, create_elf_tables) for static
//! x86-64 executables, both non-PIE (ET_EXEC) and static-PIE (ET_DYN without PT_INTERP).
//!
//! Segments are loaded eagerly into private anonymous memory (the file is small and read
//! once); the initial stack carries argv, envp and the auxiliary vector exactly as Linux
//! lays them out, and the entry registers follow the x86-64 ABI (RDX = 0: no exit handler).

use crate::kernel::hw::Hw;
use crate::kernel::mm::pgtable::{self, linux::*};
use crate::kernel::mm::vma::{Backing, Vma, VmFlags};
use crate::kernel::mm::{Mm, STACK_TOP};
use crate::kernel::uaccess;
use crate::Error;
use goblin::elf::{header, program_header as ph, Elf};
use mmu::PhysAddr;
use std::collections::BTreeMap;
use std::path::Path;

/// Where ET_DYN executables are loaded (ELF_ET_DYN_BASE with randomisation off).
pub const ELF_ET_DYN_BASE: u64 = 0x5555_5555_4000;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// What the loader produced.
pub struct Loaded {
    pub mm: Mm,
    pub entry: u64,
    pub sp: u64,
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::BadElf { path: path.to_path_buf(), why: why.into() }
}

/// Validates the ELF image and returns its parsed form.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Elf<'a>, Error> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(bad(path, "no ELF magic"));
    }
    let elf = Elf::parse(bytes).map_err(|e| bad(path, format!("malformed ELF: {e}")))?;
    if !elf.is_64 || !elf.little_endian {
        return Err(bad(path, "not a 64-bit little-endian ELF"));
    }
    if elf.header.e_machine != header::EM_X86_64 {
        return Err(bad(path, format!("machine {} is not x86-64", elf.header.e_machine)));
    }
    match elf.header.e_type {
        header::ET_EXEC | header::ET_DYN => {}
        t => return Err(bad(path, format!("ELF type {t} is not an executable"))),
    }
    if elf.program_headers.iter().any(|p| p.p_type == ph::PT_INTERP) {
        return Err(bad(path, "dynamically linked (has PT_INTERP); pagelab runs static executables"));
    }
    let loads: Vec<_> = elf.program_headers.iter().filter(|p| p.p_type == ph::PT_LOAD).collect();
    if loads.is_empty() {
        return Err(bad(path, "no PT_LOAD segment"));
    }
    for p in &loads {
        if p.p_filesz > p.p_memsz {
            return Err(bad(path, "segment file size exceeds its memory size"));
        }
        if p.p_offset.checked_add(p.p_filesz).is_none_or(|e| e > bytes.len() as u64) {
            return Err(bad(path, "segment extends past the end of the file"));
        }
        if p.p_align > 1 && (p.p_vaddr % 4096) != (p.p_offset % 4096) {
            return Err(bad(path, "segment address and file offset disagree modulo the page size"));
        }
        if p.p_vaddr.checked_add(p.p_memsz).is_none_or(|e| e > crate::kernel::mm::TASK_SIZE) {
            return Err(bad(path, "segment outside the user address space"));
        }
    }
    Ok(elf)
}

/// Creates the address space for `path` and lays out the initial stack.
pub fn load_elf(hw: &mut Hw, path: &Path, argv: &[String], envp: &[String], random: [u8; 16]) -> Result<Loaded, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let elf = parse(path, &bytes)?;
    let bias = if elf.header.e_type == header::ET_DYN { ELF_ET_DYN_BASE } else { 0 };
    let oom = || Error::OutOfMemory("loading the program".into());

    let pml4 = hw.pages.alloc_zeroed(&mut hw.mem).ok_or_else(oom)?;
    // Switch to the new address space before filling it (exec_mmap): the stack is written
    // through the normal user-access path.
    let v = hw.vcpu();
    v.tlb.write_cr3(&mut v.state.ctl, pml4.as_u64());
    let mut mm = Mm {
        pml4,
        vmas: BTreeMap::new(),
        start_brk: 0,
        brk: 0,
        users: 1,
        arg_start: 0,
        arg_end: 0,
        exe: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        table_frames: vec![pml4],
        thp_disable: 0,
        def_flags: crate::kernel::mm::vma::VmFlags::empty(),
        anon_vma_seq: 0,
    };

    let mut max_end = 0u64;
    for p in elf.program_headers.iter().filter(|p| p.p_type == ph::PT_LOAD) {
        let start = (p.p_vaddr + bias) & !0xfff;
        let end = (p.p_vaddr + bias + p.p_memsz + 0xfff) & !0xfff;
        let (r, w, x) = (p.p_flags & ph::PF_R != 0, p.p_flags & ph::PF_W != 0, p.p_flags & ph::PF_X != 0);
        let mut flags = VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC;
        flags.set(VmFlags::READ, r);
        flags.set(VmFlags::WRITE, w);
        flags.set(VmFlags::EXEC, x);
        // A writable segment is a private writable mapping (and its .bss a brk): charged.
        flags.set(VmFlags::ACCOUNT, w);
        // Populate each page: file bytes, then zeros (the .bss part).
        for page in (start..end).step_by(4096) {
            let slot = pgtable::walk_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, page).ok_or_else(oom)?;
            let old = pgtable::get_entry(&hw.mem, slot);
            let frame = if old.is_present() {
                pgtable::pte_pfn(old)
            } else {
                let f = hw.pages.alloc_zeroed(&mut hw.mem).ok_or_else(oom)?;
                hw.pages.map(f);
                f
            };
            let seg_lo = p.p_vaddr + bias;
            let file_hi = seg_lo + p.p_filesz;
            let lo = page.max(seg_lo);
            let hi = (page + 4096).min(file_hi);
            if lo < hi {
                let off = (p.p_offset + (lo - seg_lo)) as usize;
                hw.mem.write(PhysAddr::new(frame.as_u64() + (lo - page)), &bytes[off..off + (hi - lo) as usize]);
            }
            let mut prot = pgtable::vm_page_prot(r, w, x, false);
            if w {
                prot |= _PAGE_RW | _PAGE_DIRTY;
            }
            if old.is_present() {
                // Two segments share this page: grant the union of their rights.
                prot |= old.raw() & (_PAGE_RW | _PAGE_DIRTY);
                if !old.is_nx() {
                    prot &= !_PAGE_NX;
                }
            }
            let f = pgtable::set_entry(&mut hw.mem, slot, page, pgtable::mk_pte(frame, prot));
            // The address space is not live on any vCPU yet.
            f.not_needed();
        }
        let lo = mm.vmas.range(..end).next_back().filter(|(_, v)| v.end > start).map(|(&s, _)| s);
        match lo {
            Some(s) => {
                // Overlapping the previous segment's last page: extend and widen it.
                let v = mm.vmas.get_mut(&s).unwrap();
                v.end = v.end.max(end);
                v.flags |= flags;
            }
            None => {
                mm.vmas.insert(start, Vma { start, end, flags, backing: Backing::Anon, shared_id: None, userfaultfd_ctx: None, anon_vma: None, hugetlb_resv: None, hugetlb_unmapped: false, pgoff: start >> 12 });
            }
        }
        max_end = max_end.max(end);
    }
    mm.start_brk = max_end;
    mm.brk = max_end;

    // The stack: a VM_GROWSDOWN VMA that starts at 128 KiB and grows on demand.
    let stack_lo = STACK_TOP - (128 << 10);
    mm.vmas.insert(
        stack_lo,
        Vma {
            start: stack_lo,
            end: STACK_TOP,
            // VM_STACK_FLAGS includes VM_ACCOUNT.
            flags: VmFlags::READ | VmFlags::WRITE | VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC | VmFlags::GROWSDOWN | VmFlags::ACCOUNT,
            backing: Backing::Stack,
            shared_id: None,
            userfaultfd_ctx: None,
            anon_vma: None,
            hugetlb_resv: None,
            hugetlb_unmapped: false,
            pgoff: stack_lo >> 12,
        },
    );

    // AT_PHDR: the program headers' address in memory.
    let phdr = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == ph::PT_PHDR)
        .map(|p| p.p_vaddr + bias)
        .or_else(|| {
            let off = elf.header.e_phoff;
            elf.program_headers
                .iter()
                .find(|p| p.p_type == ph::PT_LOAD && p.p_offset <= off && off < p.p_offset + p.p_filesz)
                .map(|p| p.p_vaddr + bias + (off - p.p_offset))
        })
        .unwrap_or(0);
    let entry = elf.header.e_entry + bias;
    let execfn = argv.first().cloned().unwrap_or_default();
    let aux_base = [
        (AT_HWCAP, crate::cpu::model::cpuid(1, 0)[3] as u64),
        (AT_PAGESZ, 4096),
        (AT_CLKTCK, 100),
        (AT_PHDR, phdr),
        (AT_PHENT, elf.header.e_phentsize as u64),
        (AT_PHNUM, elf.header.e_phnum as u64),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_SECURE, 0),
    ];
    let sp = build_stack(hw, &mut mm, argv, envp, &execfn, random, &aux_base)?;
    Ok(Loaded { mm, entry, sp })
}

/// Lays out the initial stack as create_elf_tables does: strings at the top (execfn, then
/// envp and argv strings), the platform string, AT_RANDOM bytes, then (16-byte aligned)
/// argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL.
fn build_stack(hw: &mut Hw, mm: &mut Mm, argv: &[String], envp: &[String], execfn: &str, random: [u8; 16], aux: &[(u64, u64)]) -> Result<u64, Error> {
    let efault = |_| Error::OutOfMemory("building the initial stack".into());
    // Linux leaves an 8-byte NULL end marker at the very top.
    let mut sp = STACK_TOP - 8;
    let push_str = |hw: &mut Hw, mm: &mut Mm, sp: &mut u64, s: &str| -> Result<u64, Error> {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        *sp -= b.len() as u64;
        uaccess::copy_to_user(hw, mm, *sp, &b).map_err(efault)?;
        Ok(*sp)
    };
    let execfn_p = push_str(hw, mm, &mut sp, execfn)?;
    let mut env_p = Vec::new();
    for e in envp.iter().rev() {
        env_p.push(push_str(hw, mm, &mut sp, e)?);
    }
    env_p.reverse();
    let arg_end = sp;
    let mut arg_p = Vec::new();
    for a in argv.iter().rev() {
        arg_p.push(push_str(hw, mm, &mut sp, a)?);
    }
    arg_p.reverse();
    let platform_p = push_str(hw, mm, &mut sp, "x86_64")?;
    sp &= !0xf;
    sp -= 16;
    let random_p = sp;
    uaccess::copy_to_user(hw, mm, sp, &random).map_err(efault)?;
    mm.arg_start = arg_p.first().copied().unwrap_or(arg_end);
    mm.arg_end = arg_end;

    let mut auxv: Vec<(u64, u64)> = aux.to_vec();
    auxv.push((AT_RANDOM, random_p));
    auxv.push((AT_HWCAP2, 0));
    auxv.push((AT_EXECFN, execfn_p));
    auxv.push((AT_PLATFORM, platform_p));
    auxv.push((AT_MINSIGSTKSZ, 2048));
    auxv.push((AT_NULL, 0));
    let mut words: Vec<u64> = vec![argv.len() as u64];
    words.extend(&arg_p);
    words.push(0);
    words.extend(&env_p);
    words.push(0);
    for (k, v) in auxv {
        words.push(k);
        words.push(v);
    }
    sp -= words.len() as u64 * 8;
    sp &= !0xf;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    uaccess::copy_to_user(hw, mm, sp, &bytes).map_err(efault)?;
    Ok(sp)
}
