//! Trace events as JSON Lines.
//!
//! pagelab emits `tracing` events at the boundaries users care about: page faults, walks
//! (each level's entry), TLB fills and flushes, the fault handler's decision, syscall entry
//! and exit. `install` routes them to a writer, one JSON object per line, each stamped with
//! the *virtual* time — the clock of the vCPU that made them (docs/machine.md) — so two
//! runs of the same program give byte-identical traces. With no trace installed the events
//! cost a disabled callsite check.
//!
//! Routing: one process-wide subscriber, set as the global default by the first `install`,
//! sends each event to the writer of the thread that made it (a thread-local), or drops it
//! when that thread traces nothing. One subscriber for the whole process means every
//! callsite gets the same interest however machines on other threads come and go (with a
//! scoped subscriber per machine, tracing-core could cache a stale "never" for a callsite
//! registered on one thread while another thread was installing its subscriber, and drop
//! that event from the trace).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(0) };
    /// Per thread, like the scoped subscriber: a trace installed by one machine (one test
    /// thread) must not switch stamping on or off for another.
    static ON: Cell<bool> = const { Cell::new(false) };
    /// Where this thread's events go while it traces.
    static OUT: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

type Shared = Arc<Mutex<Box<dyn Write + Send>>>;

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

/// The process-wide layer: pagelab's events to the current thread's writer.
struct JsonLayer;

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
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // "Sometimes": whether a thread traces is decided per event, in `enabled`.
        if meta.target().starts_with("pagelab") {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        ON.with(|o| o.get()) && meta.target().starts_with("pagelab")
    }

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
        OUT.with(|o| {
            if let Some(out) = &*o.borrow() {
                if let Ok(mut w) = out.lock() {
                    let _ = w.write_all(line.as_bytes());
                }
            }
        });
    }
}

/// Routes this thread's pagelab events to `out` until the guard is dropped.
pub struct TraceGuard {
    out: Shared,
    /// Only when another global subscriber was there first: ours, scoped to this thread.
    _scoped: Option<tracing::subscriber::DefaultGuard>,
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        ON.with(|o| o.set(false));
        OUT.with(|o| o.borrow_mut().take());
        if let Ok(mut o) = self.out.lock() {
            let _ = o.flush();
        }
    }
}

pub fn install(out: Box<dyn Write + Send>) -> TraceGuard {
    static GLOBAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let global = *GLOBAL.get_or_init(|| tracing::subscriber::set_global_default(tracing_subscriber::registry().with(JsonLayer)).is_ok());
    let scoped = (!global).then(|| {
        let g = tracing::subscriber::set_default(tracing_subscriber::registry().with(JsonLayer));
        tracing::callsite::rebuild_interest_cache();
        g
    });
    let out: Shared = Arc::new(Mutex::new(out));
    OUT.with(|o| *o.borrow_mut() = Some(out.clone()));
    ON.with(|o| o.set(true));
    set_now(0);
    TraceGuard { out, _scoped: scoped }
}
