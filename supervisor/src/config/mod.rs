//! The collaboration config file (`config.toml`): parsing, validation,
//! partitioning of the sub-functions and their assignment to logical
//! processes. The result is a [`Plan`], computed at load time so that a bad
//! assignment is refused before anything starts.
//!
//! # Format
//!
//! ```toml
//! name = "wordcount"            # required; 1-63 characters [A-Za-z0-9_-]
//! coordinator = "auto"          # "auto" (default) or the name of a logical process:
//!                               # a process with instances = 1, or "group.N"
//! secure = true                 # frame tags; default true
//! state_dir = "state"           # default "state"; relative to the config file's directory;
//!                               # the sub-functions' state and the managers' logs
//!                               # live in <state_dir>/<name>/
//! sync = "always"               # commit durability: "always" (default): fdatasync before
//!                               # a commit is acknowledged; "batch": at most every 10 ms
//!                               # (survives kill -9, a power loss may lose 10 ms);
//!                               # "off": never (the OS decides)
//! report_interval_ms = 1000     # default 1000, 10..=60000
//! ring_capacity = 262144        # default 262144; a power of two in 4096..=2^30
//! grace_ms = 3000               # SIGTERM to SIGKILL; default 3000, 0..=600000
//! placement = "auto"            # "auto" (default): with more processes than CPUs,
//!                               # all on one CPU, waits sleeping, while the load is
//!                               # light; LPs on one half of the CPUs, managers on the
//!                               # other, waits spinning first, when it grows;
//!                               # "spread" / "compact": always one of the two;
//!                               # "paired": each LP on its manager's CPU, the pairs
//!                               # over every CPU, waits sleeping (durable commits);
//!                               # "none": wherever the kernel puts them
//! build = ["cargo", "build", "--release", "--examples"]   # optional, run once first
//!
//! [[subfunction]]
//! name = "split"                # 1-55 characters [A-Za-z0-9_.-]
//!
//! [[subfunction]]
//! name = "count"
//! partitions = 8                # optional, 1..=4096: "count/0" .. "count/7"
//!                               # ("count" itself is then not a sub-function)
//!
//! [[process]]
//! name = "splitter"             # 1-40 characters [A-Za-z0-9_-]; "auto" is reserved
//! command = ["../../target/release/examples/wc", "split"]
//! hosts = ["split"]
//!
//! [[process]]
//! name = "counter"
//! command = ["../../target/release/examples/wc", "count"]
//! instances = 4                 # default 1, 1..=1024
//! hosts = ["count/*"]
//! env = { RUST_LOG = "info" }   # optional
//! restart = "transient"         # "permanent" | "transient" (default) | "temporary"
//! max_restarts = 3              # default 3, 0..=1000000
//! within_secs = 10              # default 10, 1..=86400
//! sandbox = true                # default true: Landlock closes the session root to the LP
//!                               # (README, "The LP sandbox"); false turns it off
//! user = "nobody"               # optional: run the LP as this user (needs root)
//! ```
//!
//! Unknown fields are errors everywhere.
//!
//! # Paths
//!
//! Relative paths are resolved against the directory of the config file
//! (canonicalized): `state_dir`, and the program (first element) of `command`
//! and `build` when it contains a `/`. A program without `/` is looked up in
//! `PATH` when it is spawned. Every logical process runs in that directory
//! ([`shmcollab_runtime::plan::LpPlan::cwd`]).
//!
//! # Partitioning and assignment
//!
//! * The sub-functions, with the partitioned ones expanded, in declaration
//!   order, are [`Plan::subfns`]; the index is the sub-function id. A name
//!   declared twice is an error, as is a generated name longer than 55 bytes
//!   or more than 4096 sub-functions in all.
//! * Each `[[process]]` group gives `instances` logical processes (LPs), named
//!   `name` when `instances = 1`, else `name.0` .. `name.{n-1}`, in declaration
//!   order; the index of an LP in [`Plan::lps`] is its registry slot. At most
//!   1024 LPs in all.
//! * `hosts` patterns select sub-functions: an exact name (`"split"`,
//!   `"count/3"`), the base name of a partitioned family (`"count"` selects
//!   every `count/N`), or a prefix followed by a single trailing `*`
//!   (`"count/*"`, `"*"`). Every pattern must match something, every
//!   sub-function must be selected by exactly one group (two patterns of the
//!   same group may overlap).
//! * A group's selection, in table order, is dealt round-robin over its
//!   instances: item `i` goes to instance `i % instances`. A group with more
//!   instances than selected sub-functions is an error, so every LP hosts at
//!   least one sub-function.
//!
//! # Errors
//!
//! Every [`ConfigError`] (except an unreadable file) reads
//! `path:line:column: where: what`, with the line and column (1-based,
//! columns counted in characters) of the offending key or value, e.g.
//!
//! ```text
//! config.toml:12:13: process "counter", field `instances`: expected an integer between 1 and 1024, found 0
//! ```
//!
//! # Parts
//!
//! * `error`: [`ConfigError`] and the location of toml's own
//!   errors in the document (line, column, table and field);
//! * `raw`: the serde structs, as the file is written;
//! * `validate`: the checks that turn the raw form into a [`Config`],
//!   wording every refusal; `assign`: those of the process groups and the
//!   assignment of sub-functions to their LPs;
//! * `partition`: the rules of partitioning and assignment as plain
//!   functions over plain data, tested without TOML.

mod assign;
mod error;
mod partition;
mod raw;
mod validate;

pub use error::{line_col, ConfigError};

use shmcollab_runtime::plan::Plan;
use shmcollab_shm::registry::{MAX_NAME_LEN, MAX_SLOTS, MAX_SUBFN_NAME_LEN};
use std::path::{Path, PathBuf};

/// Longest collaboration name, in bytes.
pub const MAX_COLLAB_NAME: usize = if MAX_NAME_LEN < 64 { MAX_NAME_LEN } else { 64 };
/// Longest process group name, in bytes.
pub const MAX_GROUP_NAME: usize = 40;
/// Longest declared sub-function name (and longest generated one), in bytes.
pub const MAX_SUBFN_NAME: usize = MAX_SUBFN_NAME_LEN;
/// Most partitions of one sub-function.
pub const MAX_PARTITIONS: i64 = 4096;
/// Most instances of one process group (and most LPs in all).
pub const MAX_INSTANCES: i64 = MAX_SLOTS as i64;
/// Default data bytes of each ring.
pub const DEFAULT_RING_CAPACITY: usize = 262_144;
/// Smallest `ring_capacity`.
pub const MIN_RING_CAPACITY: i64 = 4096;
/// Largest `ring_capacity`.
pub const MAX_RING_CAPACITY: i64 = 1 << 30;
/// Default `report_interval_ms`.
pub const DEFAULT_REPORT_INTERVAL_MS: u64 = 1000;
/// Default `grace_ms`.
pub const DEFAULT_GRACE_MS: u64 = 3000;
/// `sandbox` of a process that does not say: on, since it costs nothing
/// measurable (README, "The LP sandbox", and `cargo bench --bench e2e`,
/// `sandbox_cost`).
pub const DEFAULT_SANDBOX: bool = true;
/// Default `max_restarts`.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// Default `within_secs`.
pub const DEFAULT_WITHIN_SECS: u64 = 10;
/// Default `state_dir`.
pub const DEFAULT_STATE_DIR: &str = "state";

/// Range of `report_interval_ms`.
const REPORT_INTERVAL: (i64, i64) = (10, 60_000);
/// Range of `grace_ms`.
pub(crate) const GRACE: (i64, i64) = (0, 600_000);
/// Range of `max_restarts`.
const MAX_RESTARTS: (i64, i64) = (0, 1_000_000);
/// Range of `within_secs`.
const WITHIN_SECS: (i64, i64) = (1, 86_400);

/// A parsed and validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    path: PathBuf,
    dir: PathBuf,
    build: Option<Vec<String>>,
    plan: Plan,
}

impl Config {
    /// Read, parse and validate the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate `text`. `path` names the file in messages, and its
    /// directory (canonicalized; made absolute if it does not exist) is the
    /// base of relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return Err(error::from_toml(text, path, &e)),
        };
        let dir = config_dir(path)?;
        validate::Source { text, path }.validate(raw, dir)
    }

    /// The collaboration name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The config file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory of the config file (canonicalized): where the build
    /// command and every LP run.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The command to run once before anything starts, if any (program
    /// resolved like the LPs' commands; run it in [`Config::dir`]).
    pub fn build_command(&self) -> Option<&[String]> {
        self.build.as_deref()
    }

    /// The plan: sub-functions, LPs and their assignment.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plan, by value.
    pub fn into_plan(self) -> Plan {
        self.plan
    }
}

fn config_dir(path: &Path) -> Result<PathBuf, ConfigError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parent
        .canonicalize()
        .or_else(|_| std::path::absolute(parent))
        .map_err(|error| ConfigError::Dir {
            path: path.to_path_buf(),
            error,
        })
}
