//! Entry encode/decode round trips (SDM 4.5 tables 4-15 to 4-20) as property tests: flags,
//! the address field at each level, protection keys, PAT and the software bits are
//! independent fields that never disturb one another.

use mmu::{Entry, Level, PhysAddr};
use proptest::prelude::*;

const MAXPHY: u8 = 52;

fn level() -> impl Strategy<Value = (Level, bool)> {
    prop_oneof![
        Just((Level::Pml4, false)),
        Just((Level::Pdpt, false)),
        Just((Level::Pdpt, true)),
        Just((Level::Pd, false)),
        Just((Level::Pd, true)),
        Just((Level::Pt, false)),
    ]
}

/// The low bit of a frame at this level (12, 21 or 30).
fn frame_shift(level: Level, huge: bool) -> u32 {
    match (level, huge) {
        (Level::Pdpt, true) => 30,
        (Level::Pd, true) => 21,
        _ => 12,
    }
}

proptest! {
    #[test]
    fn addr_round_trips(raw in any::<u64>(), (level, huge) in level(), frame in any::<u64>()) {
        let shift = frame_shift(level, huge);
        let pa = (frame << shift) & Entry::ADDR_MASK_52;
        let base = if huge { Entry(raw).with(Entry::HUGE) } else { Entry(raw).without(Entry::HUGE) };
        let e = base.with_addr(PhysAddr::new(pa), level);
        prop_assert_eq!(e.addr(level, MAXPHY).as_u64(), pa);
        // Everything outside the address field is untouched.
        let field = Entry::ADDR_MASK_52 & !((1u64 << shift) - 1);
        prop_assert_eq!(e.raw() & !field, base.raw() & !field);
        prop_assert_eq!(e.is_leaf(level), level == Level::Pt || (huge && level != Level::Pml4));
    }

    #[test]
    fn addr_is_bounded_by_maxphyaddr(raw in any::<u64>(), (level, huge) in level(), m in 36u8..=52) {
        let base = if huge { Entry(raw).with(Entry::HUGE) } else { Entry(raw).without(Entry::HUGE) };
        let a = base.addr(level, m).as_u64();
        prop_assert!(a < 1u64 << m);
        prop_assert_eq!(a & ((1u64 << frame_shift(level, huge)) - 1), 0);
        // Bits 51:M are reserved, and reported as such.
        let high = raw & Entry::ADDR_MASK_52 & !((1u64 << m) - 1);
        prop_assert_eq!(base.reserved_bits(level, m, true) & Entry::ADDR_MASK_52 & !((1u64 << m) - 1), high);
    }

    #[test]
    fn flags_round_trip(raw in any::<u64>(), bit in prop::sample::select(vec![
        Entry::PRESENT, Entry::WRITABLE, Entry::USER, Entry::PWT, Entry::PCD, Entry::ACCESSED,
        Entry::DIRTY, Entry::HUGE, Entry::GLOBAL, Entry::SOFTW1, Entry::SOFTW2, Entry::SOFTW3, Entry::NX,
    ])) {
        let on = Entry(raw).with(bit);
        let off = Entry(raw).without(bit);
        prop_assert!(on.has(bit));
        prop_assert!(!off.has(bit));
        prop_assert_eq!(on.raw() & !bit, raw & !bit);
        prop_assert_eq!(off.raw() & !bit, raw & !bit);
    }

    #[test]
    fn pkey_round_trips(raw in any::<u64>(), key in 0u8..16) {
        let e = Entry(raw).with_pkey(key);
        prop_assert_eq!(e.pkey(), key);
        prop_assert_eq!(e.raw() & !Entry::PKEY_MASK, raw & !Entry::PKEY_MASK);
        prop_assert_eq!(e.is_nx(), Entry(raw).is_nx());
    }

    #[test]
    fn softw_high_round_trips(raw in any::<u64>(), v in 0u8..128) {
        let e = Entry(raw).with_softw_high(v);
        prop_assert_eq!(e.softw_high(), v);
        prop_assert_eq!(e.raw() & !Entry::SOFTW_HIGH_MASK, raw & !Entry::SOFTW_HIGH_MASK);
        prop_assert_eq!(e.pkey(), Entry(raw).pkey());
    }

    #[test]
    fn pat_round_trips(raw in any::<u64>(), level in prop::sample::select(vec![Level::Pt, Level::Pd, Level::Pdpt]), pat: bool) {
        let e = Entry(raw).with_pat(level, pat);
        prop_assert_eq!(e.pat(level), pat);
        let bit = if level == Level::Pt { 1u64 << 7 } else { 1 << 12 };
        prop_assert_eq!(e.raw() & !bit, raw & !bit);
        let idx = ((pat as u8) << 2) | ((((raw >> 4) & 1) as u8) << 1) | ((raw >> 3) & 1) as u8;
        prop_assert_eq!(e.pat_index(level), idx);
    }

    #[test]
    fn ignored_fields_are_never_reserved(raw in any::<u64>()) {
        // Bits 11:9, 58:52 and 62:59 are ignored (or a key) at every level, never reserved.
        for level in [Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt] {
            let r = Entry(raw).reserved_bits(level, 39, false);
            prop_assert_eq!(r & (0xe00 | Entry::SOFTW_HIGH_MASK | Entry::PKEY_MASK), 0);
        }
    }
}
