//! The AFL entry point: `SHMC_FUZZ_TARGET=NAME cargo afl fuzz -i SEEDS -o
//! OUT target/release/shmc-afl` (see the crate docs).

fn main() {
    let name = std::env::var("SHMC_FUZZ_TARGET").unwrap_or_default();
    let Some(t) = shmcollab_fuzz::target(&name) else {
        eprintln!("set SHMC_FUZZ_TARGET to one of `shmc-fuzz --list`");
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| (t.run)(data));
}
