//! One classification of a page-table entry, and the encodings behind it (Linux:
//! include/linux/swapops.h, in newer trees include/linux/leafops.h with its "software
//! leaf" entries, `softleaf_t` and `softleaf_from_pte`; the x86-64 layout from
//! arch/x86/include/asm/pgtable_64.h).
//!
//! [`softleaf_from_pte`] answers "what is this entry?" in one place: a [`SoftLeaf`]. Code
//! that acts on the kind of an entry matches it exhaustively, without a `_` arm, so a new
//! kind of entry (a migration entry that pagelab makes, a device entry) is a compile error
//! at every site that must decide what to do with it. Unlike Linux's softleaf, which is
//! "none" for a present entry (Linux callers test `pte_present` first), the enum also
//! names the two present kinds, so one match covers every entry.
//!
//! The encode side lives here too: [`swp_entry_to_pte`] and the `pte_swp_mk*` flag
//! helpers for swap entries, [`make_pte_marker`] for markers. The property tests below
//! check that whatever is encoded classifies back to itself.
//!
//! ## The non-present entry space (x86-64, reference §2.3-2.6)
//!
//! A PTE is *none* when only the A/D bits may be set, *present* when P is set, *PROT_NONE*
//! when P is clear and `_PAGE_PROTNONE` (bit 8) set (present to Linux, not to the
//! hardware); anything else is a "swap-style" entry:
//!
//! ```text
//!  63    59 58                                   9 8 7 6 5 4 3 2 1 0
//! [ type  ][          ~offset (50 bits)           ][0|0|-|-|-|E|W|S|0]
//! ```
//!
//! * bits 63:59, the type: 0..[`MAX_SWAPFILES`]-1 are swap devices (pagelab has one, type
//!   0); the special types are carved from the top: the migration types 28-30 and
//!   [`SWP_PTE_MARKER`] (31), whose offset is a [`PteMarker`] bitmask;
//! * bits 58:9, the offset, stored inverted (L1TF: a non-present entry must never look
//!   like it points at real memory);
//! * bit 1 `_PAGE_SWP_SOFT_DIRTY` (unused, CONFIG_MEM_SOFT_DIRTY=n), bit 2
//!   [`_PAGE_SWP_UFFD_WP`], bit 3 [`_PAGE_SWP_EXCLUSIVE`]: flags kept in the PTE, not in
//!   the entry (markers never use them: their uffd-wp is a marker bit);
//! * bits 0 (P), 7 (PSE) and 8 (PROTNONE) are always clear, so `pte_present` and
//!   `pmd_present` are false.

use super::pgtable::{self, linux::*};
use mmu::Entry;

// ---- The x86-64 encoding (arch/x86/include/asm/pgtable_64.h, pgtable_64_types.h) ----

/// Bits of the type field (MAX_SWAPFILES_SHIFT).
pub const SWP_TYPE_BITS: u32 = 5;
/// The first offset bit: `_PAGE_BIT_PROTNONE` + 1.
pub const SWP_OFFSET_FIRST_BIT: u32 = 9;
/// Shift that lines the inverted offset up before the type is removed again.
pub const SWP_OFFSET_SHIFT: u32 = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS;
/// `_PAGE_SWP_SOFT_DIRTY` (bit 1, `_PAGE_RW`); unused: CONFIG_MEM_SOFT_DIRTY=n.
pub const _PAGE_SWP_SOFT_DIRTY: u64 = 1 << 1;
/// `_PAGE_SWP_UFFD_WP` (bit 2, `_PAGE_USER`): the swapped page was uffd-wp protected.
pub const _PAGE_SWP_UFFD_WP: u64 = 1 << 2;
/// `_PAGE_SWP_EXCLUSIVE` (bit 3, `_PAGE_PWT`): the page was PageAnonExclusive.
pub const _PAGE_SWP_EXCLUSIVE: u64 = 1 << 3;
/// The flag bits a swap PTE may carry besides the entry.
pub const _PAGE_SWP_FLAGS: u64 = _PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP | _PAGE_SWP_EXCLUSIVE;

/// Linux: __swp_entry. The arch PTE value of (type, offset), flags clear.
pub const fn __swp_entry(ty: u64, offset: u64) -> u64 {
    ((!offset) << SWP_OFFSET_SHIFT >> SWP_TYPE_BITS) | (ty << (64 - SWP_TYPE_BITS))
}
/// Linux: __swp_type.
const fn __swp_type(raw: u64) -> u64 {
    raw >> (64 - SWP_TYPE_BITS)
}
/// Linux: __swp_offset.
const fn __swp_offset(raw: u64) -> u64 {
    (!raw) << SWP_TYPE_BITS >> SWP_OFFSET_SHIFT
}

// ---- The arch-independent entry (include/linux/swapops.h) ----

/// MAX_SWAPFILES on the reference config (no MEMORY_FAILURE, no DEVICE_PRIVATE): 28.
/// Types 28-30 are the migration types, 31 the PTE marker.
pub const MAX_SWAPFILES: u64 = 28;
pub const SWP_MIGRATION_READ: u64 = 28;
pub const SWP_MIGRATION_READ_EXCLUSIVE: u64 = 29;
pub const SWP_MIGRATION_WRITE: u64 = 30;
/// The PTE-marker type (always 31 since v6.2).
pub const SWP_PTE_MARKER: u64 = 31;
/// The offset field's width (50 bits).
pub const SWP_OFFSET_MASK: u64 = (1 << 50) - 1;

/// A swap entry (Linux: swp_entry_t): a type and an offset, without the PTE flag bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwpEntry {
    pub ty: u64,
    pub offset: u64,
}

/// Linux: swp_entry.
pub const fn swp_entry(ty: u64, offset: u64) -> SwpEntry {
    SwpEntry { ty, offset: offset & SWP_OFFSET_MASK }
}
impl SwpEntry {
    /// Linux: swp_type.
    pub const fn swp_type(self) -> u64 {
        self.ty
    }
    /// Linux: swp_offset.
    pub const fn swp_offset(self) -> u64 {
        self.offset
    }
}

/// The bits of a PTE marker (Linux: pte_marker, the PTE_MARKER_* bits): what an entry that
/// maps nothing remembers about its page. A set of flags, like `VmFlags`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PteMarker(u64);

impl PteMarker {
    /// PTE_MARKER_UFFD_WP: the page is uffd-wp protected although nothing is mapped
    /// (shmem, hugetlb, WP_UNPOPULATED).
    pub const UFFD_WP: Self = Self(1 << 0);
    /// PTE_MARKER_POISONED: every access raises SIGBUS (UFFDIO_POISON, a swap-in error).
    pub const POISONED: Self = Self(1 << 1);
    /// PTE_MARKER_GUARD: every access raises SIGSEGV (MADV_GUARD_INSTALL).
    pub const GUARD: Self = Self(1 << 2);
    /// PTE_MARKER_MASK: the bits that mean something.
    pub const MASK: u64 = 0x7;

    pub const fn empty() -> Self {
        Self(0)
    }
    /// The marker bits of `bits`, unknown ones dropped.
    pub const fn from_bits_truncate(bits: u64) -> Self {
        Self(bits & Self::MASK)
    }
    pub const fn bits(self) -> u64 {
        self.0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl core::ops::BitOr for PteMarker {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl core::fmt::Debug for PteMarker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PteMarker(")?;
        let mut sep = "";
        for (m, name) in [(Self::UFFD_WP, "UFFD_WP"), (Self::POISONED, "POISONED"), (Self::GUARD, "GUARD")] {
            if self.contains(m) {
                write!(f, "{sep}{name}")?;
                sep = " | ";
            }
        }
        write!(f, ")")
    }
}

// ---- The classification ----

/// What a page-table entry is (Linux: the kinds `softleaf_type` names, plus the present
/// ones). Match it exhaustively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftLeaf {
    /// Nothing mapped and nothing remembered (Linux: pte_none).
    None,
    /// A present mapping: the hardware may use it, and TLBs may cache it.
    Present,
    /// A PROT_NONE mapping (Linux: pte_protnone): P clear and `_PAGE_PROTNONE` set, the
    /// frame kept. Present to Linux (`pte_present`, the page stays mapped and counted), but
    /// never to the hardware, so no TLB holds it and changing it needs no flush.
    ProtNone,
    /// A swap entry (type < MAX_SWAPFILES): the contents are in the device's slot, and the
    /// PTE's flag bits remember uffd-wp and PageAnonExclusive.
    Swap { entry: SwpEntry, uffd_wp: bool, exclusive: bool },
    /// A migration entry (types 28-30). pagelab never makes one: the kind exists because
    /// the encoding space has it, and every site must still say what it would do.
    Migration { entry: SwpEntry, uffd_wp: bool },
    /// A PTE marker (type 31): no page, only the marker bits.
    Marker(PteMarker),
}

/// Classifies a PTE (Linux: softleaf_from_pte, with pte_none and pte_present in front).
#[inline]
pub fn softleaf_from_pte(pte: Entry) -> SoftLeaf {
    if pte.is_present() {
        return SoftLeaf::Present;
    }
    if pgtable::pte_none(pte) {
        return SoftLeaf::None;
    }
    if pte.has(_PAGE_PROTNONE) {
        return SoftLeaf::ProtNone;
    }
    let entry = pte_to_swp_entry(pte);
    let uffd_wp = pte.has(_PAGE_SWP_UFFD_WP);
    match entry.ty {
        SWP_PTE_MARKER => SoftLeaf::Marker(PteMarker::from_bits_truncate(entry.offset)),
        SWP_MIGRATION_READ..SWP_PTE_MARKER => SoftLeaf::Migration { entry, uffd_wp },
        _ => SoftLeaf::Swap { entry, uffd_wp, exclusive: pte.has(_PAGE_SWP_EXCLUSIVE) },
    }
}

/// Linux: pte_to_swp_entry (the flag bits are stripped first: pte_swp_clear_flags). Only
/// the classification decodes entries.
fn pte_to_swp_entry(pte: Entry) -> SwpEntry {
    let raw = pte.raw() & !_PAGE_SWP_FLAGS;
    swp_entry(__swp_type(raw), __swp_offset(raw))
}

// ---- The encode side ----

/// Linux: swp_entry_to_pte (no flag bits; add them with the pte_swp_mk* helpers).
pub fn swp_entry_to_pte(e: SwpEntry) -> Entry {
    Entry::new(__swp_entry(e.ty, e.offset))
}
/// Linux: make_pte_marker_entry.
pub const fn make_pte_marker_entry(marker: PteMarker) -> SwpEntry {
    swp_entry(SWP_PTE_MARKER, marker.bits())
}
/// Linux: make_pte_marker. The PTE of a marker.
pub fn make_pte_marker(marker: PteMarker) -> Entry {
    swp_entry_to_pte(make_pte_marker_entry(marker))
}
/// Linux: pte_swp_mkuffd_wp.
pub fn pte_swp_mkuffd_wp(pte: Entry) -> Entry {
    pte.with(_PAGE_SWP_UFFD_WP)
}
/// Linux: pte_swp_clear_uffd_wp.
pub fn pte_swp_clear_uffd_wp(pte: Entry) -> Entry {
    pte.without(_PAGE_SWP_UFFD_WP)
}
/// Linux: pte_swp_mkexclusive.
pub fn pte_swp_mkexclusive(pte: Entry) -> Entry {
    pte.with(_PAGE_SWP_EXCLUSIVE)
}
/// Linux: pte_swp_clear_exclusive.
pub fn pte_swp_clear_exclusive(pte: Entry) -> Entry {
    pte.without(_PAGE_SWP_EXCLUSIVE)
}

// ---- uffd-wp in any form ----

/// Linux: pte_swp_uffd_wp_any: a swap-style entry with bit 2 (a marker too: PAGEMAP_SCAN's
/// WP_MATCHING sets it on a guard marker), or a uffd-wp marker.
pub fn pte_swp_uffd_wp_any(pte: Entry) -> bool {
    match softleaf_from_pte(pte) {
        SoftLeaf::Swap { uffd_wp, .. } | SoftLeaf::Migration { uffd_wp, .. } => uffd_wp,
        SoftLeaf::Marker(m) => m.contains(PteMarker::UFFD_WP) || pte.has(_PAGE_SWP_UFFD_WP),
        SoftLeaf::None | SoftLeaf::Present | SoftLeaf::ProtNone => false,
    }
}

/// Any PTE without uffd-wp in any form (mremap without EVENT_REMAP, the CVE-2025-21696
/// fix "mm: clear uffd-wp PTE/PMD state on mremap()"): a present or PROT_NONE PTE loses
/// `_PAGE_UFFD_WP` (R/W stays clear: the next write takes an ordinary write fault), a
/// swap-style entry loses `_PAGE_SWP_UFFD_WP`, a marker loses the uffd-wp bit and becomes
/// none when nothing else is left.
pub fn pte_clear_uffd_wp_any(pte: Entry) -> Entry {
    match softleaf_from_pte(pte) {
        SoftLeaf::None => pte,
        SoftLeaf::Present | SoftLeaf::ProtNone => pte.without(_PAGE_UFFD_WP),
        SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } => pte_swp_clear_uffd_wp(pte),
        SoftLeaf::Marker(m) => {
            let rest = m.difference(PteMarker::UFFD_WP);
            if rest.is_empty() {
                Entry::new(0)
            } else {
                make_pte_marker(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every kind that an entry value alone can carry (present kinds need a frame).
    fn encodable() -> impl Strategy<Value = SoftLeaf> {
        prop_oneof![
            Just(SoftLeaf::None),
            // Offset 2^50-1 of type 0 would encode as none; no device is that large.
            (0..MAX_SWAPFILES, 0..SWP_OFFSET_MASK, any::<bool>(), any::<bool>())
                .prop_map(|(ty, off, uffd_wp, exclusive)| SoftLeaf::Swap { entry: swp_entry(ty, off), uffd_wp, exclusive }),
            (SWP_MIGRATION_READ..SWP_PTE_MARKER, 0..=SWP_OFFSET_MASK, any::<bool>())
                .prop_map(|(ty, off, uffd_wp)| SoftLeaf::Migration { entry: swp_entry(ty, off), uffd_wp }),
            (0..=PteMarker::MASK).prop_map(|m| SoftLeaf::Marker(PteMarker::from_bits_truncate(m))),
        ]
    }

    /// The canonical PTE of a kind, built with the Linux-named encoders only.
    fn encode(leaf: SoftLeaf) -> Entry {
        match leaf {
            SoftLeaf::None => Entry::new(0),
            SoftLeaf::Swap { entry, uffd_wp, exclusive } => {
                let mut pte = swp_entry_to_pte(entry);
                if uffd_wp {
                    pte = pte_swp_mkuffd_wp(pte);
                }
                if exclusive {
                    pte = pte_swp_mkexclusive(pte);
                }
                pte
            }
            SoftLeaf::Migration { entry, uffd_wp } => {
                let pte = swp_entry_to_pte(entry);
                if uffd_wp {
                    pte_swp_mkuffd_wp(pte)
                } else {
                    pte
                }
            }
            SoftLeaf::Marker(m) => make_pte_marker(m),
            SoftLeaf::Present | SoftLeaf::ProtNone => unreachable!("not encodable without a frame"),
        }
    }

    proptest! {
        #[test]
        fn encode_then_classify_round_trips(leaf in encodable()) {
            let pte = encode(leaf);
            prop_assert_eq!(softleaf_from_pte(pte), leaf);
            // Never mistaken for a mapping by the hardware (P) or by Linux (PROTNONE), and
            // never a huge PMD (PSE), so the same value is safe in a PMD slot.
            if leaf != SoftLeaf::None {
                prop_assert_eq!(pte.raw() & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE), 0);
            }
        }

        #[test]
        fn classify_then_encode_keeps_every_meaningful_bit(raw in any::<u64>()) {
            // Whatever a value classifies as, encoding that kind again gives back every bit
            // the kind is made of; what differs are the bits the encoding ignores (A/D,
            // soft-dirty, bits 4 and 7; a migration entry's bit 3; a marker's flag bits and
            // offset bits above the marker mask).
            let leaf = softleaf_from_pte(Entry::new(raw));
            let ignored = _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_SWP_SOFT_DIRTY | (1 << 4) | _PAGE_PSE;
            let meaningful = match leaf {
                SoftLeaf::Present | SoftLeaf::ProtNone => return Ok(()),
                SoftLeaf::None | SoftLeaf::Swap { .. } => !ignored,
                SoftLeaf::Migration { .. } => !(ignored | _PAGE_SWP_EXCLUSIVE),
                // The type, the marker bits (offset bits 2:0, in PTE bits 11:9), P, PROTNONE.
                SoftLeaf::Marker(_) => (0x1f << 59) | (PteMarker::MASK << SWP_OFFSET_FIRST_BIT) | _PAGE_PRESENT | _PAGE_PROTNONE,
            };
            prop_assert_eq!(encode(leaf).raw() & meaningful, raw & meaningful);
        }

        #[test]
        fn present_and_protnone_are_decided_by_p_and_bit_8(raw in any::<u64>()) {
            let leaf = softleaf_from_pte(Entry::new(raw));
            prop_assert_eq!(leaf == SoftLeaf::Present, raw & _PAGE_PRESENT != 0);
            prop_assert_eq!(leaf == SoftLeaf::ProtNone, raw & _PAGE_PRESENT == 0 && raw & _PAGE_PROTNONE != 0 && !pgtable::pte_none(Entry::new(raw)));
        }

        #[test]
        fn uffd_wp_any_matches_the_kind(leaf in encodable()) {
            let pte = encode(leaf);
            let expect = match leaf {
                SoftLeaf::Swap { uffd_wp, .. } | SoftLeaf::Migration { uffd_wp, .. } => uffd_wp,
                SoftLeaf::Marker(m) => m.contains(PteMarker::UFFD_WP),
                SoftLeaf::None | SoftLeaf::Present | SoftLeaf::ProtNone => false,
            };
            prop_assert_eq!(pte_swp_uffd_wp_any(pte), expect);
            // Clearing leaves no uffd-wp in any form and keeps everything else.
            let cleared = pte_clear_uffd_wp_any(pte);
            prop_assert!(!pte_swp_uffd_wp_any(cleared));
            let kept = match leaf {
                SoftLeaf::Swap { entry, exclusive, .. } => SoftLeaf::Swap { entry, uffd_wp: false, exclusive },
                SoftLeaf::Migration { entry, .. } => SoftLeaf::Migration { entry, uffd_wp: false },
                SoftLeaf::Marker(m) if m.difference(PteMarker::UFFD_WP).is_empty() => SoftLeaf::None,
                SoftLeaf::Marker(m) => SoftLeaf::Marker(m.difference(PteMarker::UFFD_WP)),
                other => other,
            };
            prop_assert_eq!(softleaf_from_pte(cleared), kept);
        }
    }

    #[test]
    fn the_reference_values() {
        // Reference §2.5: raw x86-64 values.
        assert_eq!(make_pte_marker(PteMarker::UFFD_WP).raw(), 0xFFFF_FFFF_FFFF_FC00);
        assert_eq!(make_pte_marker(PteMarker::POISONED).raw(), 0xFFFF_FFFF_FFFF_FA00);
        assert_eq!(make_pte_marker(PteMarker::GUARD).raw(), 0xFFFF_FFFF_FFFF_F600);
        assert_eq!(swp_entry_to_pte(swp_entry(0, 8)).raw(), 0x07FF_FFFF_FFFF_EE00);
        assert_eq!(pte_swp_mkuffd_wp(swp_entry_to_pte(swp_entry(0, 8))).raw(), 0x07FF_FFFF_FFFF_EE04);
        // PROT_NONE: P clear, bit 8 and U set, a frame.
        assert_eq!(softleaf_from_pte(Entry::new(0x100 | 0x4 | 0x1234_5000)), SoftLeaf::ProtNone);
        // Stray A/D bits in a none entry (pte_none ignores them).
        assert_eq!(softleaf_from_pte(Entry::new(_PAGE_ACCESSED | _PAGE_DIRTY)), SoftLeaf::None);
        assert_eq!(format!("{:?}", PteMarker::UFFD_WP | PteMarker::GUARD), "PteMarker(UFFD_WP | GUARD)");
    }
}
