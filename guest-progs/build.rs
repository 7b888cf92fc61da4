//! Compiles every `c/*.c` (and C++ `c/*.cc`) into a static x86-64 Linux executable in
//! `$OUT_DIR/bin/<stem>`.
//!
//! * Compiler: `$PAGELAB_GUEST_CC` if set, else `gcc` (the system gcc with glibc's static
//!   libraries, e.g. Debian's `gcc` + `libc6-dev`); for `.cc`, `$PAGELAB_GUEST_CXX` if set,
//!   else `g++` (with libstdc++'s static library, Debian's `g++`).
//! * Default flags: `-static -O2 -Wall -Wextra -I c -o OUT FILE`.
//! * Per-file flags: a comment line `// pagelab: cflags=FLAGS` among the leading `//` comment
//!   lines of the file appends FLAGS (whitespace-separated). If FLAGS contains `-static-pie`,
//!   it replaces `-static` (and `-fPIE` is added), giving a self-relocating ET_DYN executable.
//! * Generated `$OUT_DIR/guest_progs.rs` (included by `src/lib.rs`): `ALL`, `BIN_DIR`,
//!   `STATIC_PIE` and `CFLAGS`.
//!
//! Headers (`c/*.h`) are not compiled; any change under `c/` rebuilds everything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Prog {
    name: String,
    /// The compiler: the C or the C++ one.
    cc: String,
    src: PathBuf,
    flags: Vec<String>,
    pie: bool,
}

fn per_file_flags(src: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    let mut flags = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with("//") {
            break;
        }
        if let Some(rest) = line.trim_start_matches('/').trim().strip_prefix("pagelab:") {
            if let Some(f) = rest.trim().strip_prefix("cflags=") {
                flags.extend(f.split_whitespace().map(str::to_owned));
            }
        }
    }
    flags
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let cdir = manifest.join("c");
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cc = std::env::var("PAGELAB_GUEST_CC").unwrap_or_else(|_| "gcc".to_owned());
    let cxx = std::env::var("PAGELAB_GUEST_CXX").unwrap_or_else(|_| "g++".to_owned());

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", cdir.display());
    println!("cargo:rerun-if-env-changed=PAGELAB_GUEST_CC");
    println!("cargo:rerun-if-env-changed=PAGELAB_GUEST_CXX");

    match Command::new(&cc).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "\n\npagelab-guest-progs: `{cc} --version` failed ({}); a working gcc is needed to build the guest programs.\n{}\n",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "\n\npagelab-guest-progs: cannot run the C compiler `{cc}` ({e}).\n\
             The guest programs in guest-progs/c are built with the system gcc and glibc's static libraries.\n\
             Install them (Debian/Ubuntu: `apt-get install gcc libc6-dev`) or point PAGELAB_GUEST_CC at a gcc.\n"
        ),
    }

    let mut progs = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&cdir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", cdir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for src in entries {
        println!("cargo:rerun-if-changed={}", src.display());
        let compiler = match src.extension().and_then(|e| e.to_str()) {
            Some("c") => &cc,
            Some("cc") => &cxx,
            _ => continue,
        };
        let name = src.file_stem().unwrap().to_str().expect("non-UTF-8 file name").to_owned();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "guest program name {name:?}: use [A-Za-z0-9_] only"
        );
        let extra = per_file_flags(&src);
        let pie = extra.iter().any(|f| f == "-static-pie");
        let mut flags: Vec<String> = if pie { vec!["-static-pie".into(), "-fPIE".into()] } else { vec!["-static".into()] };
        flags.extend(["-O2", "-Wall", "-Wextra"].map(String::from));
        flags.extend(extra.into_iter().filter(|f| f != "-static-pie"));
        progs.push(Prog { name, cc: compiler.clone(), src, flags, pie });
    }

    // Compile in parallel (a handful of threads; each gcc is single-threaded).
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(usize, Result<String, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(p) = progs.get(i) else { break };
                        let dst = bin.join(&p.name);
                        let mut cmd = Command::new(&p.cc);
                        cmd.args(&p.flags).arg("-I").arg(&cdir).arg("-o").arg(&dst).arg(&p.src);
                        let shown = format!("{cmd:?}");
                        let r = match cmd.output() {
                            Err(e) => Err(format!("{shown}: cannot run: {e}")),
                            Ok(o) if !o.status.success() => Err(format!(
                                "{shown} failed ({}):\n{}{}",
                                o.status,
                                String::from_utf8_lossy(&o.stdout),
                                String::from_utf8_lossy(&o.stderr)
                            )),
                            Ok(o) => Ok(String::from_utf8_lossy(&o.stderr).into_owned()),
                        };
                        done.push((i, r));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut failed = String::new();
    for (i, r) in results {
        match r {
            Ok(warnings) => {
                for l in warnings.lines() {
                    println!("cargo:warning={}: {l}", progs[i].name);
                }
            }
            Err(e) => failed.push_str(&e),
        }
    }
    if !failed.is_empty() {
        panic!("\n\npagelab-guest-progs: compiling guest programs failed:\n{failed}\n");
    }

    let mut g = String::new();
    g.push_str("// @generated by guest-progs/build.rs\n");
    g.push_str("/// Every guest program, sorted by name (the stems of `guest-progs/c/*.c` and `*.cc`).\n");
    g.push_str("pub const ALL: &[&str] = &[");
    for p in &progs {
        write!(g, "{:?}, ", p.name).unwrap();
    }
    g.push_str("];\n");
    g.push_str("/// The directory holding the compiled programs (`$OUT_DIR/bin`).\n");
    writeln!(g, "pub const BIN_DIR: &str = {:?};", bin.to_str().expect("non-UTF-8 OUT_DIR")).unwrap();
    g.push_str("/// The programs built with `-static-pie` (ET_DYN, self-relocating).\n");
    g.push_str("pub const STATIC_PIE: &[&str] = &[");
    for p in progs.iter().filter(|p| p.pie) {
        write!(g, "{:?}, ", p.name).unwrap();
    }
    g.push_str("];\n");
    g.push_str("/// The gcc flags each program was compiled with (besides `-I c -o OUT SRC`).\n");
    g.push_str("pub const CFLAGS: &[(&str, &[&str])] = &[\n");
    for p in &progs {
        writeln!(g, "    ({:?}, &{:?}),", p.name, p.flags).unwrap();
    }
    g.push_str("];\n");
    std::fs::write(out.join("guest_progs.rs"), g).unwrap();
}
