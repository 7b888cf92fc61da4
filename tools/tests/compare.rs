//! `pagelab-compare` smoke test: a tiny run of every operation prints both sides and the
//! figures, natively and under pagelab (the transcripts must agree or it fails).

use std::process::Command;

#[test]
fn compare_runs_every_operation_natively_and_under_pagelab() {
    let o = Command::new(env!("CARGO_BIN_EXE_pagelab-compare"))
        .args(["--size-mb", "1", "--faults", "8", "--runs", "1"])
        .output()
        .expect("run pagelab-compare");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    for label in ["WRITEPROTECT protect, 1 MiB", "WRITEPROTECT un-protect, 1 MiB", "uffd-wp fault round trip, 8", "MISSING + UFFDIO_COPY, 8"] {
        assert!(out.contains(label), "{label} missing:\n{out}");
    }
    assert_eq!(out.matches("  native : clock ").count(), 4, "{out}");
    assert_eq!(out.matches("  pagelab: clock ").count(), 4, "{out}");
    assert!(out.contains("load average at start"), "{out}");
}

#[test]
fn compare_rejects_an_unknown_operation() {
    let o = Command::new(env!("CARGO_BIN_EXE_pagelab-compare")).args(["--op", "nope", "--runs", "1"]).output().expect("run pagelab-compare");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown operation"));
}
