//! `shmc-fuzz TARGET|all [--secs N] [--execs N] [--seed N] [--seeds DIR]`:
//! mutate valid encodings and feed them to a decoder until the time or the
//! count is up; print one JSON line per target (executions, seconds,
//! crashes). An input that panics is saved under `fuzz/crashes/` and makes
//! the exit code 1. `--seeds DIR` writes the target's seeds (for AFL) and
//! exits. `--list` lists the targets.

use shmcollab_fuzz::{mutate, target, Rng, Target, TARGETS};
use std::time::{Duration, Instant};

struct Opts {
    secs: f64,
    execs: u64,
    seed: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if args.iter().any(|a| a == "--list") || args.is_empty() {
        for t in TARGETS {
            println!("{:10} {}", t.name, t.what);
        }
        return;
    }
    let which = &args[0];
    let chosen: Vec<&Target> = if which == "all" {
        TARGETS.iter().collect()
    } else {
        match target(which) {
            Some(t) => vec![t],
            None => {
                eprintln!("no target {which:?} (--list lists them)");
                std::process::exit(2);
            }
        }
    };
    if let Some(dir) = arg("--seeds") {
        for t in &chosen {
            for (i, s) in (t.seeds)().iter().enumerate() {
                let p = std::path::Path::new(&dir).join(format!("{}-{i}", t.name));
                std::fs::create_dir_all(&dir).expect("seed dir");
                std::fs::write(&p, s).expect("write seed");
            }
        }
        return;
    }
    let opts = Opts {
        secs: arg("--secs").and_then(|s| s.parse().ok()).unwrap_or(10.0),
        execs: arg("--execs")
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX),
        seed: arg("--seed").and_then(|s| s.parse().ok()).unwrap_or(1),
    };
    // A panic is caught and reported with its input, not printed twice.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    for t in chosen {
        failed |= run(t, &opts);
    }
    std::process::exit(i32::from(failed));
}

/// Fuzz one target; true if an input panicked.
fn run(t: &Target, o: &Opts) -> bool {
    let seeds = (t.seeds)();
    let mut rng = Rng::new(o.seed ^ t.name.len() as u64);
    let start = Instant::now();
    let limit = Duration::from_secs_f64(o.secs);
    let (mut execs, mut crashes) = (0u64, 0u64);
    let mut input = Vec::new();
    while execs < o.execs && (execs % 1024 != 0 || start.elapsed() < limit) {
        if execs % 64 == 0 || input.len() > 1 << 16 {
            input.clone_from(&seeds[rng.below(seeds.len())]);
        }
        mutate(&mut input, &seeds, &mut rng);
        execs += 1;
        let r = std::panic::catch_unwind(|| (t.run)(&input));
        if r.is_err() {
            crashes += 1;
            save(t.name, &input);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"fuzz\":\"{}\",\"execs\":{execs},\"secs\":{secs:.1},\"execs_per_s\":{:.0},\"crashes\":{crashes}}}",
        t.name,
        execs as f64 / secs.max(1e-9)
    );
    crashes > 0
}

fn save(name: &str, input: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crashes");
    let _ = std::fs::create_dir_all(&dir);
    let h = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let p = dir.join(format!("{name}-{h:016x}"));
    let _ = std::fs::write(&p, input);
    eprintln!("{name}: an input panicked, saved as {}", p.display());
}
