#!/bin/sh
# The build line of config_c.toml (run in this directory): the C ABI, then
# the C pair linked statically against it (the flags of
# include/shmcollab.pc, spelled out so that pkg-config is not needed).
set -e
cargo build --release -q -p shmcollab-c
mkdir -p ../../target/release/examples
for p in ping pong; do
  ${CC:-cc} -O2 -Wall -Wextra -o ../../target/release/examples/pingpong-c-$p $p.c \
    -I../../include ../../target/release/libshmcollab.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
done
