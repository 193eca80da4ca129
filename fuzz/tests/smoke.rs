//! Every target's seeds decode without panicking, and a short mutation run
//! of each finds nothing (CI's brief fuzzing; the long runs are commands in
//! the README).

use shmcollab_fuzz::{mutate, Rng, TARGETS};

#[test]
fn every_target_survives_its_seeds_and_a_short_mutation_run() {
    let execs: u64 = std::env::var("SHMC_FUZZ_EXECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    for t in TARGETS {
        let seeds = (t.seeds)();
        assert!(!seeds.is_empty(), "{}: no seeds", t.name);
        for s in &seeds {
            (t.run)(s);
        }
        let mut rng = Rng::new(42);
        let mut input = Vec::new();
        for i in 0..execs {
            if i % 64 == 0 {
                input.clone_from(&seeds[rng.below(seeds.len())]);
            }
            mutate(&mut input, &seeds, &mut rng);
            let r = std::panic::catch_unwind(|| (t.run)(&input));
            assert!(r.is_ok(), "{}: panicked on {:02x?}", t.name, input);
        }
    }
}
