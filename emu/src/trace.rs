//! Trace events as JSON Lines.
//!
//! pagelab emits `tracing` events at the boundaries users care about: page faults, walks
//! (each level's entry), TLB fills and flushes, the fault handler's decision, syscall entry
//! and exit. `install` routes them to a writer, one JSON object per line, each stamped with
//! the *virtual* time — the number of guest instructions retired — so two runs of the same
//! program give byte-identical traces. With no trace installed the events cost a disabled
//! callsite check.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(0) };
    /// Per thread, like the scoped subscriber: a trace installed by one machine (one test
    /// thread) must not switch stamping on or off for another.
    static ON: Cell<bool> = const { Cell::new(false) };
}

/// Whether a trace is being written on this thread (the CPU then stamps every instruction).
#[inline(always)]
pub fn on() -> bool {
    ON.with(|o| o.get())
}

/// Sets the virtual timestamp of the events that follow.
#[inline]
pub fn set_now(t: u64) {
    NOW.with(|n| n.set(t));
}

struct JsonLayer {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

struct JsonFields<'a>(&'a mut String);

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Visit for JsonFields<'_> {
    fn record_u64(&mut self, f: &Field, v: u64) {
        let _ = write!(self.0, ",\"{}\":{}", f.name(), v);
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        let _ = write!(self.0, ",\"{}\":{}", f.name(), v);
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        let _ = write!(self.0, ",\"{}\":{}", f.name(), v);
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        let _ = write!(self.0, ",\"{}\":", f.name());
        escape(self.0, v);
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        let _ = write!(self.0, ",\"{}\":", f.name());
        escape(self.0, &format!("{v:?}"));
    }
}

impl<S: Subscriber> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("pagelab") {
            return;
        }
        let mut line = String::with_capacity(160);
        let t = NOW.with(|n| n.get());
        let _ = write!(line, "{{\"t\":{t},\"kind\":");
        escape(&mut line, meta.target().trim_start_matches("pagelab::"));
        event.record(&mut JsonFields(&mut line));
        line.push_str("}\n");
        if let Ok(mut o) = self.out.lock() {
            let _ = o.write_all(line.as_bytes());
        }
    }
}

/// Routes pagelab's events to `out` until the guard is dropped.
pub struct TraceGuard {
    _default: tracing::subscriber::DefaultGuard,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        ON.with(|o| o.set(false));
        if let Ok(mut o) = self.out.lock() {
            let _ = o.flush();
        }
    }
}

pub fn install(out: Box<dyn Write + Send>) -> TraceGuard {
    let out = Arc::new(Mutex::new(out));
    let filter = tracing_subscriber::filter::Targets::new().with_target("pagelab", tracing::Level::TRACE);
    let sub = tracing_subscriber::registry().with(JsonLayer { out: out.clone() }.with_filter(filter));
    let g = tracing::subscriber::set_default(sub);
    // A callsite another thread registered while this subscriber was being registered can
    // keep a stale "never" interest (tracing-core computes interest per callsite, across
    // threads, with scoped subscribers): recompute every callsite now that ours is in.
    tracing::callsite::rebuild_interest_cache();
    ON.with(|o| o.set(true));
    set_now(0);
    TraceGuard { _default: g, out }
}
