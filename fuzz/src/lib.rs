//! Fuzz targets: every decoder of bytes that come from outside the process
//! (shared memory, an LP, files under /dev/shm or `state_dir`, a config).
//! Each target takes arbitrary bytes and must return (an error is fine):
//! a panic, a hang or a crash is a bug.
//!
//! Two ways to run them:
//! * `cargo run --release -p shmcollab-fuzz --bin shmc-fuzz -- TARGET
//!   --secs N` (or `all`): a mutation fuzzer without dependencies (random
//!   byte flips, insertions, cuts and splices of valid encodings), which
//!   prints executions per target and saves any input that panics under
//!   `fuzz/crashes/`;
//! * AFL (coverage guided), where cargo-afl builds: `cargo afl build
//!   --release -p shmcollab-fuzz --features afl --bin shmc-afl`, seeds with
//!   `shmc-fuzz TARGET --seeds DIR`, then `SHMC_FUZZ_TARGET=TARGET cargo afl
//!   fuzz -i DIR -o out target/release/shmc-afl`.
//!
//! Every crash found becomes a regression test in `tests/regressions.rs`.

mod targets;

pub use targets::{Target, TARGETS};

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A small, fast, reproducible random generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input` (from `seeds` for splices), in place.
pub fn mutate(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut Rng) {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 16, 32];
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => input.truncate(rng.below(len)),
            3 => {
                let i = rng.below(len + 1);
                let b = rng.next_u64() as u8;
                input.insert(i, b);
            }
            4 if len >= 4 => {
                // A length or index field: an absurd little-endian u32.
                let i = rng.below(len - 3);
                let v = [0u32, 1, u32::MAX, 0x8000_0000, 0xffff, 4096][rng.below(6)];
                input[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            5 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            6 if len > 1 => {
                let a = rng.below(len);
                let b = rng.below(len);
                input.swap(a, b);
            }
            _ => {
                let n = rng.below(16);
                for _ in 0..n {
                    input.push(rng.next_u64() as u8);
                }
            }
        }
    }
}
