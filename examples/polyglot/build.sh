#!/bin/sh
# The build line of polyglot/config.toml (run in this directory): the Rust
# LP, the C ABI, then the C LP linked statically against it (the flags of
# include/shmcollab.pc, spelled out so that pkg-config is not needed).
set -e
cargo build --release -q --example polyglot-rust
cargo build --release -q -p shmcollab-c
mkdir -p ../../target/release/examples
${CC:-cc} -O2 -Wall -Wextra -o ../../target/release/examples/polyglot-c c_lp.c \
  -I../../include ../../target/release/libshmcollab.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
