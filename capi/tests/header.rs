//! `include/shmcollab.h` is what cbindgen makes of this crate today: the
//! test regenerates it in memory and compares. With `SHMC_BLESS=1` it
//! writes the new header instead.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("capi/cbindgen.toml: {e}"));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen: {e}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen wrote UTF-8")
}

#[test]
fn checked_in_header_is_current() {
    let header = crate_dir().join("../include/shmcollab.h");
    let fresh = generate();
    if std::env::var_os("SHMC_BLESS").is_some() {
        std::fs::write(&header, &fresh).unwrap();
        eprintln!("wrote {}", header.display());
        return;
    }
    let old = std::fs::read_to_string(&header).unwrap_or_default();
    if old != fresh {
        let first = old
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(old.lines().count().min(fresh.lines().count()));
        panic!(
            "{} is stale (first difference at line {}): regenerate it with\n    \
             SHMC_BLESS=1 cargo test -p shmcollab-c --test header\nand commit it",
            Path::new("include/shmcollab.h").display(),
            first + 1
        );
    }
}

#[test]
fn header_declares_every_entry_point() {
    // Every `#[no_mangle]` function of the crate is in the header (a
    // function cbindgen skipped, e.g. for a type it cannot express, would
    // be missing from C without this).
    let fresh = generate();
    let mut n = 0;
    for f in std::fs::read_dir(crate_dir().join("src")).unwrap() {
        let src = std::fs::read_to_string(f.unwrap().path()).unwrap();
        let mut lines = src.lines();
        while let Some(l) = lines.next() {
            if l.trim() != "#[no_mangle]" {
                continue;
            }
            let decl = lines.next().unwrap();
            let name = decl
                .split("fn ")
                .nth(1)
                .and_then(|s| s.split('(').next())
                .unwrap_or_else(|| panic!("no fn after #[no_mangle]: {decl}"));
            assert!(name.starts_with("shmc_"), "{name} lacks the shmc_ prefix");
            assert!(
                fresh.contains(&format!(" {name}(")) || fresh.contains(&format!("*{name}(")),
                "{name} is not in the generated header"
            );
            n += 1;
        }
    }
    assert!(n >= 30, "only {n} entry points found");
}
