//! userfaultfd core (issue 4): the file (creation, UFFDIO_API, REGISTER/UNREGISTER, WAKE,
//! read/poll), MISSING faults with UFFDIO_COPY/ZEROPAGE, uffd-wp, kernel-mode accesses and
//! the non-cooperative events — each guest program verified natively first, then compared
//! with pagelab, also under two vCPUs and the seeded random scheduler (every interleaving
//! must print what Linux prints). The bigger suite is tests/tests/uffd.rs.

use emu::SchedPolicy;
use pagelab_tests::*;

/// Guest programs this file tests (see differential.rs::every_program_has_a_test).
const COVERED: &[&str] = &["uffdcore_api", "uffdcore_missing", "uffdcore_wp"];

#[test]
fn covered_programs_exist() {
    for p in COVERED {
        guest_progs::meta(p);
    }
}

#[test]
fn uffdcore_api_matches_linux() {
    assert_same_default("uffdcore_api");
}

#[test]
fn uffdcore_missing_matches_linux() {
    assert_same_default("uffdcore_missing");
}

#[test]
fn uffdcore_wp_matches_linux() {
    assert_same_default("uffdcore_wp");
}

/// The threaded programs under other machine shapes and schedules.
#[test]
fn uffdcore_under_every_schedule() {
    for prog in ["uffdcore_missing", "uffdcore_wp"] {
        let args = guest_progs::meta(prog).test_args;
        let native = run_native(prog, args);
        for (vcpus, sched, seed) in [(2, SchedPolicy::RoundRobin, 0), (1, SchedPolicy::Random, 5), (2, SchedPolicy::Random, 17), (3, SchedPolicy::Random, 99)] {
            let cfg = Config { vcpus, sched, seed, check_tlb: true, ..test_config() };
            let r = try_run_pagelab_with(cfg, prog, args).unwrap();
            assert_eq!(r.stdout_str(), native.stdout_str(), "{prog} on {vcpus} vCPUs {sched:?} seed {seed}: {}", first_difference(&native.stdout, &r.stdout));
            assert_eq!(normalize(&r.outcome), normalize(&native.outcome));
        }
    }
}

/// A field of one JSON Lines trace record (flat objects; strings without escapes).
fn field(line: &str, key: &str) -> String {
    let pat = format!("\"{key}\":");
    let Some(i) = line.find(&pat) else { return String::new() };
    let rest = &line[i + pat.len()..];
    if let Some(r) = rest.strip_prefix('"') {
        r[..r.find('"').unwrap_or(r.len())].to_string()
    } else {
        rest[..rest.find([',', '}']).unwrap_or(rest.len())].to_string()
    }
}

/// The events of a pagelab run of `prog args` as compact tokens, for the page `page` and
/// the thread `tid` that faults on it (found from the first "message queued").
fn golden_tokens(prog: &str, args: &[&str]) -> Vec<String> {
    // One traced run at a time in this binary: `trace::install` flips a process-wide
    // switch and tracing rebuilds callsite interest as scoped subscribers come and go.
    static TRACED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = TRACED.lock().unwrap_or_else(|e| e.into_inner());
    let buf = SharedBuf::new();
    let r = {
        let _g = emu::trace::install(Box::new(buf.clone()));
        try_run_pagelab_with(test_config(), prog, args).unwrap()
    };
    assert_eq!(r.stdout_str(), run_native(prog, args).stdout_str());
    let text = String::from_utf8(buf.contents()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let s = |v: &&str, k: &str| field(v, k);
    let first = lines.iter().find(|v| s(v, "message") == "message queued").expect("a userfault message");
    let (page, tid) = (s(first, "address"), s(first, "tid"));
    let mut out = Vec::new();
    for v in &lines {
        let (kind, msg) = (s(v, "kind"), s(v, "message"));
        let on_page = s(v, "addr") == page || s(v, "address") == page || s(v, "start") == page;
        let tok = match (kind.as_str(), msg.as_str()) {
            ("fault", "page fault") if on_page => format!("fault code={}", s(v, "code")),
            ("fault", "") if on_page => format!("decision={}", s(v, "decision")),
            ("uffd", "message queued") if on_page => format!("queued flags={}", s(v, "flags")),
            ("uffd", "message read") if on_page => format!("read flags={}", s(v, "flags")),
            ("uffd", "change_pte") if on_page => format!("pte uffd_wp={} writable={}", s(v, "uffd_wp"), s(v, "writable")),
            ("uffd", "change_protection") if on_page => format!("change_protection wp={} changed={} flush={}", s(v, "wp"), s(v, "changed"), s(v, "flush")),
            ("uffd", "wake") => "uffd wake".to_string(),
            ("sched", "block") if s(v, "tid") == tid => format!("block {}", s(v, "what").split(" on ").next().unwrap_or("")),
            ("sched", "wake") if s(v, "tid") == tid => format!("woken {}", s(v, "reason")),
            _ => continue,
        };
        out.push(tok);
    }
    out
}

/// The four steps of a write to a uffd-wp'd page that is COW-shared with a child (the
/// sequence uffd-wp was designed around), pinned from the trace: (1) the write faults
/// and do_wp_page sends a WP message instead of copying; the thread blocks; (2) the
/// handler reads it and un-protects: the bit goes but R/W stays clear (the page is
/// shared), the TLB is flushed, the thread woken; (3) the retried write faults again;
/// (4) do_wp_page now copies.
#[test]
fn golden_trace_cow_uffd_wp_four_steps() {
    let t = golden_tokens("uffdcore_wp", &["cow"]);
    let from = t.iter().position(|x| x == "decision=uffd_wp").expect("uffd_wp decision") - 1;
    let expect = [
        "fault code=0x7",
        "decision=uffd_wp",
        "queued flags=3",
        "block userfault",
        "read flags=3",
        "pte uffd_wp=false writable=false",
        "change_protection wp=false changed=1 flush=true",
        "uffd wake",
        "woken Event",
        "fault code=0x7",
        "decision=wp_copy",
    ];
    assert_eq!(&t[from..from + expect.len()], &expect, "tokens: {t:#?}");
}

/// The same for an exclusive page: the resolve makes the PTE writable
/// (can_change_pte_writable), so the retried write does not fault.
#[test]
fn golden_trace_exclusive_resolve_is_writable() {
    let t = golden_tokens("uffdcore_wp", &["excl"]);
    let from = t.iter().position(|x| x == "decision=uffd_wp").expect("uffd_wp decision") - 1;
    let expect = ["fault code=0x7", "decision=uffd_wp", "queued flags=3", "block userfault", "read flags=3", "pte uffd_wp=false writable=true", "change_protection wp=false changed=1 flush=true", "uffd wake", "woken Event"];
    assert_eq!(&t[from..from + expect.len()], &expect, "tokens: {t:#?}");
    assert!(!t[from + expect.len()..].iter().any(|x| x.starts_with("fault code")), "no fault after the resolve: {t:#?}");
}
