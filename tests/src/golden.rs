//! Golden traces: the trace events of one userfault, as compact tokens a test compares
//! with the sequence Linux's code path implies ("fault code=0x7", "decision=uffd_wp",
//! "queued flags=3", ...). The run's stdout must also match the native run's.

use crate::{run_native, test_config, try_run_pagelab_with, SharedBuf};

/// A field of one JSON Lines trace record (flat objects; strings without escapes).
pub fn field(line: &str, key: &str) -> String {
    let pat = format!("\"{key}\":");
    let Some(i) = line.find(&pat) else { return String::new() };
    let rest = &line[i + pat.len()..];
    if let Some(r) = rest.strip_prefix('"') {
        r[..r.find('"').unwrap_or(r.len())].to_string()
    } else {
        rest[..rest.find([',', '}']).unwrap_or(rest.len())].to_string()
    }
}

/// The events of a pagelab run of `prog args` as compact tokens, for the page and the
/// faulting thread of its `nth` "message queued" (0: the first): faults on that page
/// with their decisions, the message queued and read, PTE and change_protection changes
/// there, every uffd wake, and the thread's blocks and wake-ups.
pub fn tokens(prog: &str, args: &[&str], nth: usize) -> Vec<String> {
    let buf = SharedBuf::new();
    let r = {
        let _g = emu::trace::install(Box::new(buf.clone()));
        try_run_pagelab_with(test_config(), prog, args).unwrap()
    };
    assert_eq!(r.stdout_str(), run_native(prog, args).stdout_str());
    let text = String::from_utf8(buf.contents()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let s = |v: &&str, k: &str| field(v, k);
    let msg = lines.iter().filter(|v| s(v, "message") == "message queued").nth(nth).expect("enough userfault messages");
    let (page, tid) = (s(msg, "address"), s(msg, "tid"));
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
