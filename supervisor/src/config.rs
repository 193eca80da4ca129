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
//! state_dir = "state"           # default "state"; relative to the config file's directory
//! report_interval_ms = 1000     # default 1000, 10..=60000
//! ring_capacity = 262144        # default 262144; a power of two in 4096..=2^30
//! grace_ms = 3000               # SIGTERM to SIGKILL; default 3000, 0..=600000
//! placement = "auto"            # "auto" (default): with more processes than CPUs,
//!                               # LPs on one half of the CPUs, managers on the other;
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
//! instances = 4                 # default 1, 1..=256
//! hosts = ["count/*"]
//! env = { RUST_LOG = "info" }   # optional
//! restart = "transient"         # "permanent" | "transient" (default) | "temporary"
//! max_restarts = 3              # default 3, 0..=1000000
//! within_secs = 10              # default 10, 1..=86400
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
//! ([`LpPlan::cwd`]).
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
//!   256 LPs in all.
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
//! config.toml:12:13: process "counter", field `instances`: expected an integer between 1 and 256, found 0
//! ```

use serde::Deserialize;
use shmcollab_runtime::plan::{CoordinatorChoice, LpPlan, Placement, Plan, RestartType};
use shmcollab_shm::registry::{MAX_NAME_LEN, MAX_SLOTS, MAX_SUBFNS, MAX_SUBFN_NAME_LEN};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

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
/// Default `max_restarts`.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// Default `within_secs`.
pub const DEFAULT_WITHIN_SECS: u64 = 10;
/// Default `state_dir`.
pub const DEFAULT_STATE_DIR: &str = "state";

const REPORT_INTERVAL: (i64, i64) = (10, 60_000);
const GRACE: (i64, i64) = (0, 600_000);
const MAX_RESTARTS: (i64, i64) = (0, 1_000_000);
const WITHIN_SECS: (i64, i64) = (1, 86_400);

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the config file: {error}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}:{line}:{column}: {}TOML syntax error: {message}", path.display(), prefix(context))]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Where: the table and field, if known (else empty).
        context: String,
        /// toml's message.
        message: String,
    },
    /// Valid TOML that does not fit the schema: unknown field, missing
    /// field, wrong type.
    #[error("{}:{line}:{column}: {context}: {message}", path.display())]
    Schema {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Where: the table and field.
        context: String,
        /// toml's message, with what the field takes when known.
        message: String,
    },
    /// A value out of range, a duplicate, a bad assignment.
    #[error("{}:{line}:{column}: {context}: {message}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Where: the table and field.
        context: String,
        /// What was expected and what was found.
        message: String,
    },
    /// The directory of the config file cannot be resolved.
    #[error("{}: cannot resolve the config file's directory: {error}", path.display())]
    Dir {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

/// `"context: "`, or nothing when the context is empty.
fn prefix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    }
}

impl ConfigError {
    /// The config file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Read { path, .. }
            | ConfigError::Syntax { path, .. }
            | ConfigError::Schema { path, .. }
            | ConfigError::Invalid { path, .. }
            | ConfigError::Dir { path, .. } => path,
        }
    }

    /// 1-based line and column of the error, when it has one.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Syntax { line, column, .. }
            | ConfigError::Schema { line, column, .. }
            | ConfigError::Invalid { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }
}

/// 1-based line and column (in characters) of `byte_offset` in `text`. An
/// offset past the end is the end of the text; an offset inside a character
/// counts as that character.
pub fn line_col(text: &str, byte_offset: usize) -> (usize, usize) {
    let mut end = byte_offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

// ---------------------------------------------------------------------------
// Raw (deserialized) form.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Spanned<String>,
    #[serde(default)]
    coordinator: Option<Spanned<String>>,
    #[serde(default)]
    secure: Option<bool>,
    #[serde(default)]
    state_dir: Option<Spanned<String>>,
    #[serde(default)]
    report_interval_ms: Option<Spanned<i64>>,
    #[serde(default)]
    ring_capacity: Option<Spanned<i64>>,
    #[serde(default)]
    grace_ms: Option<Spanned<i64>>,
    #[serde(default)]
    placement: Option<Spanned<String>>,
    #[serde(default)]
    build: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    subfunction: Vec<RawSubfn>,
    #[serde(default)]
    process: Vec<RawProcess>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubfn {
    name: Spanned<String>,
    #[serde(default)]
    partitions: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    name: Spanned<String>,
    command: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    instances: Option<Spanned<i64>>,
    hosts: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    env: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    restart: Option<RestartType>,
    #[serde(default)]
    max_restarts: Option<Spanned<i64>>,
    #[serde(default)]
    within_secs: Option<Spanned<i64>>,
}

// ---------------------------------------------------------------------------
// The validated config.

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
        let src = Source { text, path };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return Err(src.toml_error(&e)),
        };
        let dir = config_dir(path)?;
        src.validate(raw, dir)
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

/// A sub-function of the expanded table.
struct Subfn {
    name: String,
    /// Base name when generated by `partitions`.
    family: Option<String>,
    /// Index of its `[[subfunction]]` declaration.
    decl: usize,
}

struct Source<'a> {
    text: &'a str,
    path: &'a Path,
}

/// Context string for a field of the top-level table.
fn top(field: &str) -> String {
    format!("field `{field}`")
}

/// Context string for a field of a `[[kind]]` table named `name`.
fn of(kind: &str, name: &str, field: &str) -> String {
    format!("{kind} {name:?}, field `{field}`")
}

fn expected_int(range: (i64, i64), found: i64) -> String {
    format!(
        "expected an integer between {} and {}, found {found}",
        range.0, range.1
    )
}

impl Source<'_> {
    fn err(&self, span: Range<usize>, context: String, message: String) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            context,
            message,
        }
    }

    /// Position just past the last non-blank text (where a missing table
    /// would go).
    fn end_span(&self) -> Range<usize> {
        let end = self.text.trim_end().len();
        end..end
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let (line, column) = line_col(self.text, span.start);
        let path = self.path.to_path_buf();
        match DeTable::parse(self.text) {
            Err(_) => {
                // A syntax error: name the key when the recovered document
                // has one there.
                let (root, _) = DeTable::parse_recoverable(self.text);
                let segs = locate(root.get_ref(), &span);
                let context = if segs.is_empty() {
                    String::new()
                } else {
                    describe(root.get_ref(), &segs)
                };
                ConfigError::Syntax {
                    path,
                    line,
                    column,
                    context,
                    message: e.message().to_owned(),
                }
            }
            Ok(root) => {
                let segs = locate(root.get_ref(), &span);
                let context = if segs.is_empty() {
                    "top level".to_owned()
                } else {
                    describe(root.get_ref(), &segs)
                };
                let mut message = e.message().to_owned();
                if message.starts_with("invalid ") {
                    if let Some((field, takes)) = field_help(&segs) {
                        message = format!("{message} (`{field}` takes {takes})");
                    }
                }
                ConfigError::Schema {
                    path,
                    line,
                    column,
                    context,
                    message,
                }
            }
        }
    }

    fn int(
        &self,
        value: &Option<Spanned<i64>>,
        range: (i64, i64),
        default: i64,
        context: impl FnOnce() -> String,
    ) -> Result<i64, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) if (range.0..=range.1).contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(self.err(v.span(), context(), expected_int(range, *v.get_ref()))),
        }
    }

    fn name(
        &self,
        name: &Spanned<String>,
        max: usize,
        extra: &str,
        context: impl FnOnce() -> String,
    ) -> Result<(), ConfigError> {
        let s = name.get_ref();
        let ok = !s.is_empty()
            && s.len() <= max
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || extra.contains(c));
        if ok {
            return Ok(());
        }
        let mut set = String::from("A-Z a-z 0-9 _ -");
        for c in extra.chars() {
            set.push(' ');
            set.push(c);
        }
        Err(self.err(
            name.span(),
            context(),
            format!("expected a name of 1 to {max} characters from {set}, found {s:?}"),
        ))
    }

    /// Check a command (non-empty, no NUL) and resolve its program.
    fn command(
        &self,
        cmd: &Spanned<Vec<Spanned<String>>>,
        dir: &Path,
        context: impl Fn() -> String,
    ) -> Result<Vec<String>, ConfigError> {
        let Some(program) = cmd.get_ref().first() else {
            return Err(self.err(
                cmd.span(),
                context(),
                "expected a non-empty array (the program, then its arguments), found []".into(),
            ));
        };
        if program.get_ref().is_empty() {
            return Err(self.err(
                program.span(),
                context(),
                "expected a program, found an empty string".into(),
            ));
        }
        if let Some(bad) = cmd.get_ref().iter().find(|a| a.get_ref().contains('\0')) {
            return Err(self.err(
                bad.span(),
                context(),
                "expected a string without NUL characters".into(),
            ));
        }
        let mut out: Vec<String> = cmd.get_ref().iter().map(|a| a.get_ref().clone()).collect();
        let p = program.get_ref();
        if p.contains('/') && !p.starts_with('/') {
            match dir.join(p).into_os_string().into_string() {
                Ok(abs) => out[0] = abs,
                Err(_) => {
                    return Err(self.err(
                        program.span(),
                        context(),
                        format!(
                            "the config directory {} is not valid UTF-8, so the relative \
                             program {p:?} cannot be resolved; use an absolute path",
                            dir.display()
                        ),
                    ))
                }
            }
        }
        Ok(out)
    }

    fn validate(&self, raw: RawConfig, dir: PathBuf) -> Result<Config, ConfigError> {
        // Top-level scalars.
        self.name(&raw.name, MAX_COLLAB_NAME, "", || top("name"))?;
        let name = raw.name.get_ref().clone();
        let secure = raw.secure.unwrap_or(true);
        let report_interval_ms = self.int(
            &raw.report_interval_ms,
            REPORT_INTERVAL,
            DEFAULT_REPORT_INTERVAL_MS as i64,
            || top("report_interval_ms"),
        )? as u64;
        let ring_capacity = match &raw.ring_capacity {
            None => DEFAULT_RING_CAPACITY,
            Some(v) => {
                let n = *v.get_ref();
                if !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&n) || n.count_ones() != 1 {
                    return Err(self.err(
                        v.span(),
                        top("ring_capacity"),
                        format!(
                            "expected a power of two between {MIN_RING_CAPACITY} and \
                             {MAX_RING_CAPACITY}, found {n}"
                        ),
                    ));
                }
                n as usize
            }
        };
        let grace_ms = self.int(&raw.grace_ms, GRACE, DEFAULT_GRACE_MS as i64, || {
            top("grace_ms")
        })? as u64;
        let placement = match &raw.placement {
            None => Placement::Auto,
            Some(p) => match p.get_ref().as_str() {
                "auto" => Placement::Auto,
                "none" => Placement::None,
                other => {
                    return Err(self.err(
                        p.span(),
                        top("placement"),
                        format!("expected \"auto\" or \"none\", found {other:?}"),
                    ))
                }
            },
        };
        let state_dir = match &raw.state_dir {
            None => dir.join(DEFAULT_STATE_DIR),
            Some(s) if s.get_ref().is_empty() || s.get_ref().contains('\0') => {
                return Err(self.err(
                    s.span(),
                    top("state_dir"),
                    format!("expected a directory path, found {:?}", s.get_ref()),
                ))
            }
            Some(s) => dir.join(s.get_ref()),
        };
        let build = match &raw.build {
            None => None,
            Some(b) => Some(self.command(b, &dir, || top("build"))?),
        };

        let subfns = self.subfunctions(&raw)?;
        let lps = self.processes(&raw, &subfns, &dir)?;

        let coordinator = match &raw.coordinator {
            None => CoordinatorChoice::Auto,
            Some(c) if c.get_ref() == "auto" => CoordinatorChoice::Auto,
            Some(c) => match lps.iter().position(|lp| lp.name == *c.get_ref()) {
                Some(i) => CoordinatorChoice::Slot(i as u32),
                None => {
                    let wanted = c.get_ref();
                    let members: Vec<&str> = lps
                        .iter()
                        .filter(|lp| lp.group == *wanted)
                        .map(|lp| lp.name.as_str())
                        .collect();
                    let message = if let (Some(first), Some(last)) =
                        (members.first(), members.last())
                    {
                        format!(
                            "expected \"auto\" or the name of one logical process, found the \
                             process group {wanted:?}, which has {} instances: name one of \
                             {first} .. {last}",
                            members.len()
                        )
                    } else {
                        format!(
                            "expected \"auto\" or the name of a logical process ({}), found {wanted:?}",
                            summarize(lps.iter().map(|lp| lp.name.clone()))
                        )
                    };
                    return Err(self.err(c.span(), top("coordinator"), message));
                }
            },
        };

        Ok(Config {
            path: self.path.to_path_buf(),
            dir,
            build,
            plan: Plan {
                name,
                secure,
                report_interval_ms,
                coordinator,
                state_dir,
                subfns: subfns.into_iter().map(|s| s.name).collect(),
                lps,
                ring_capacity,
                grace_ms,
                placement,
                cpus: None,
            },
        })
    }

    fn subfunctions(&self, raw: &RawConfig) -> Result<Vec<Subfn>, ConfigError> {
        if raw.subfunction.is_empty() {
            return Err(self.err(
                self.end_span(),
                top("subfunction"),
                "expected at least one [[subfunction]] table, found none".into(),
            ));
        }
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        let mut out: Vec<Subfn> = Vec::new();
        for (decl, sf) in raw.subfunction.iter().enumerate() {
            let base = sf.name.get_ref();
            self.name(&sf.name, MAX_SUBFN_NAME, ".", || {
                format!("subfunction #{}, field `name`", decl + 1)
            })?;
            if let Some(first) = seen.get(base.as_str()) {
                return Err(self.err(
                    sf.name.span(),
                    of("subfunction", base, "name"),
                    format!(
                        "expected a unique name, found {base:?} again (first declared on line {})",
                        self.line_of(first)
                    ),
                ));
            }
            seen.insert(base, sf.name.span());
            let before = out.len();
            match &sf.partitions {
                None => out.push(Subfn {
                    name: base.clone(),
                    family: None,
                    decl,
                }),
                Some(_) => {
                    let n = self.int(&sf.partitions, (1, MAX_PARTITIONS), 1, || {
                        of("subfunction", base, "partitions")
                    })?;
                    let longest = format!("{base}/{}", n - 1);
                    if longest.len() > MAX_SUBFN_NAME {
                        return Err(self.err(
                            sf.name.span(),
                            of("subfunction", base, "name"),
                            format!(
                                "expected generated names of at most {MAX_SUBFN_NAME} bytes, \
                                 found {longest:?} ({} bytes); shorten the name",
                                longest.len()
                            ),
                        ));
                    }
                    out.extend((0..n).map(|i| Subfn {
                        name: format!("{base}/{i}"),
                        family: Some(base.clone()),
                        decl,
                    }));
                }
            }
            if out.len() > MAX_SUBFNS as usize {
                let span = sf.partitions.as_ref().map_or(sf.name.span(), |p| p.span());
                let field = if sf.partitions.is_some() {
                    "partitions"
                } else {
                    "name"
                };
                return Err(self.err(
                    span,
                    of("subfunction", base, field),
                    format!(
                        "expected at most {MAX_SUBFNS} sub-functions in all, found {} with this \
                         one ({before} before it)",
                        out.len()
                    ),
                ));
            }
        }
        Ok(out)
    }

    fn processes(
        &self,
        raw: &RawConfig,
        subfns: &[Subfn],
        dir: &Path,
    ) -> Result<Vec<LpPlan>, ConfigError> {
        if raw.process.is_empty() {
            return Err(self.err(
                self.end_span(),
                top("process"),
                "expected at least one [[process]] table, found none".into(),
            ));
        }
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        // Owner of each sub-function: the index of its process group.
        let mut owner: Vec<Option<usize>> = vec![None; subfns.len()];
        let mut lps: Vec<LpPlan> = Vec::new();
        for (g, p) in raw.process.iter().enumerate() {
            let gname = p.name.get_ref();
            self.name(&p.name, MAX_GROUP_NAME, "", || {
                format!("process #{}, field `name`", g + 1)
            })?;
            if gname == "auto" {
                return Err(self.err(
                    p.name.span(),
                    of("process", gname, "name"),
                    "expected a name other than \"auto\", which is reserved for \
                     `coordinator = \"auto\"`"
                        .into(),
                ));
            }
            if let Some(first) = seen.get(gname.as_str()) {
                return Err(self.err(
                    p.name.span(),
                    of("process", gname, "name"),
                    format!(
                        "expected a unique name, found {gname:?} again (first declared on line {})",
                        self.line_of(first)
                    ),
                ));
            }
            seen.insert(gname, p.name.span());

            let command = self.command(&p.command, dir, || of("process", gname, "command"))?;
            let instances = self.int(&p.instances, (1, MAX_INSTANCES), 1, || {
                of("process", gname, "instances")
            })? as usize;
            let max_restarts = self.int(
                &p.max_restarts,
                MAX_RESTARTS,
                i64::from(DEFAULT_MAX_RESTARTS),
                || of("process", gname, "max_restarts"),
            )? as u32;
            let within_secs = self.int(
                &p.within_secs,
                WITHIN_SECS,
                DEFAULT_WITHIN_SECS as i64,
                || of("process", gname, "within_secs"),
            )? as u64;
            let mut env = Vec::new();
            for (k, v) in p.env.iter().flatten() {
                let key = k.get_ref();
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    return Err(self.err(
                        k.span(),
                        of("process", gname, "env"),
                        format!(
                            "expected a variable name (not empty, without '=' or NUL), found {key:?}"
                        ),
                    ));
                }
                if v.get_ref().contains('\0') {
                    return Err(self.err(
                        v.span(),
                        of("process", gname, &format!("env.{key}")),
                        "expected a string without NUL characters".into(),
                    ));
                }
                env.push((key.clone(), v.get_ref().clone()));
            }
            // BTreeMap iteration is already sorted by key.

            // Selection.
            let patterns = p.hosts.get_ref();
            if patterns.is_empty() {
                return Err(self.err(
                    p.hosts.span(),
                    of("process", gname, "hosts"),
                    "expected at least one sub-function pattern, found []".into(),
                ));
            }
            let mut selected: Vec<usize> = Vec::new();
            let mut picked = vec![false; subfns.len()];
            for pat in patterns {
                let s = pat.get_ref();
                let star = s.find('*');
                if s.is_empty() || star.is_some_and(|i| i != s.len() - 1) {
                    return Err(self.err(
                        pat.span(),
                        of("process", gname, "hosts"),
                        format!(
                            "expected a sub-function name, a partitioned sub-function's base \
                             name, or a prefix ending in a single \"*\", found {s:?}"
                        ),
                    ));
                }
                let mut matched = false;
                for (i, sf) in subfns.iter().enumerate() {
                    let hit = match star {
                        Some(_) => sf.name.starts_with(&s[..s.len() - 1]),
                        None => sf.name == *s || sf.family.as_deref() == Some(s.as_str()),
                    };
                    if !hit {
                        continue;
                    }
                    matched = true;
                    if let Some(other) = owner[i] {
                        return Err(self.err(
                            pat.span(),
                            of("process", gname, "hosts"),
                            format!(
                                "pattern {s:?} selects sub-function {:?}, which process {:?} \
                                 (line {}) already hosts; a sub-function is hosted by one \
                                 process group",
                                sf.name,
                                raw.process[other].name.get_ref(),
                                self.line_of(&raw.process[other].name.span()),
                            ),
                        ));
                    }
                    if !picked[i] {
                        picked[i] = true;
                        selected.push(i);
                    }
                }
                if !matched {
                    return Err(self.err(
                        pat.span(),
                        of("process", gname, "hosts"),
                        format!(
                            "pattern {s:?} matches no sub-function; expected one of the \
                             declared: {}",
                            summarize_subfns(raw, subfns)
                        ),
                    ));
                }
            }
            for &i in &selected {
                owner[i] = Some(g);
            }
            selected.sort_unstable();
            if instances > selected.len() {
                let span = p.instances.as_ref().map_or(p.name.span(), |v| v.span());
                return Err(self.err(
                    span,
                    of("process", gname, "instances"),
                    format!(
                        "expected at most {} instances, since `hosts` selects only {} \
                         sub-function{} ({}), found {instances}",
                        selected.len(),
                        selected.len(),
                        if selected.len() == 1 { "" } else { "s" },
                        summarize(selected.iter().map(|&i| subfns[i].name.clone())),
                    ),
                ));
            }
            if lps.len() + instances > MAX_SLOTS as usize {
                let span = p.instances.as_ref().map_or(p.name.span(), |v| v.span());
                return Err(self.err(
                    span,
                    of("process", gname, "instances"),
                    format!(
                        "expected at most {MAX_SLOTS} logical processes in all, found {} with \
                         this group ({} before it)",
                        lps.len() + instances,
                        lps.len()
                    ),
                ));
            }
            for k in 0..instances {
                let name = if instances == 1 {
                    gname.clone()
                } else {
                    format!("{gname}.{k}")
                };
                lps.push(LpPlan {
                    name,
                    group: gname.clone(),
                    command: command.clone(),
                    cwd: dir.to_path_buf(),
                    env: env.clone(),
                    subfns: selected
                        .iter()
                        .skip(k)
                        .step_by(instances)
                        .map(|&i| subfns[i].name.clone())
                        .collect(),
                    restart: p.restart.unwrap_or_default(),
                    max_restarts,
                    within_secs,
                });
            }
        }
        if let Some(i) = owner.iter().position(Option::is_none) {
            let sf = &subfns[i];
            let decl = &raw.subfunction[sf.decl];
            let base = decl.name.get_ref();
            let what = match &sf.family {
                Some(_) => format!(
                    "sub-function {:?} (partition of {base:?}) is not hosted by any process",
                    sf.name
                ),
                None => format!("sub-function {base:?} is not hosted by any process"),
            };
            return Err(self.err(
                decl.name.span(),
                of("subfunction", base, "name"),
                format!(
                    "{what}; expected a [[process]] whose `hosts` selects it (e.g. hosts = [{:?}])",
                    sf.family.as_deref().unwrap_or(&sf.name)
                ),
            ));
        }
        Ok(lps)
    }
}

/// At most 8 names, comma separated.
fn summarize(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    let mut out = names.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 8 {
        out.push_str(&format!(", ... ({} in all)", names.len()));
    }
    out
}

/// The declared sub-functions, families shown as `count/0..count/7`.
fn summarize_subfns(raw: &RawConfig, subfns: &[Subfn]) -> String {
    let decls = raw.subfunction.iter().enumerate().map(|(d, sf)| {
        let n = subfns.iter().filter(|s| s.decl == d).count();
        let base = sf.name.get_ref();
        match sf.partitions {
            Some(_) => format!("{base}/0..{base}/{}", n.saturating_sub(1)),
            None => base.clone(),
        }
    });
    summarize(decls)
}

// ---------------------------------------------------------------------------
// Locating toml errors in the document.

enum Seg {
    Key(String),
    Index(usize),
}

fn contains(node: &Range<usize>, target: &Range<usize>) -> bool {
    (node.start <= target.start && target.start < node.end)
        || (node.start == target.start && node.end == target.end)
}

/// Path of the deepest key or value whose span contains the start of `span`.
fn locate(root: &DeTable<'_>, span: &Range<usize>) -> Vec<Seg> {
    let mut path = Vec::new();
    locate_table(root, span, &mut path);
    path
}

fn locate_table(t: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    for (k, v) in t.iter() {
        path.push(Seg::Key(k.get_ref().to_string()));
        if contains(&k.span(), span) || locate_value(v, span, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn locate_value(v: &Spanned<DeValue<'_>>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    let inner = match v.get_ref() {
        DeValue::Table(t) => locate_table(t, span, path),
        DeValue::Array(a) => a.iter().enumerate().any(|(i, e)| {
            path.push(Seg::Index(i));
            let found = locate_value(e, span, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    };
    inner || contains(&v.span(), span)
}

/// `process "counter", field `instances`` from a located path.
fn describe(root: &DeTable<'_>, segs: &[Seg]) -> String {
    let mut rest = segs;
    let mut entity = None;
    if let [Seg::Key(table), Seg::Index(i), tail @ ..] = segs {
        if table == "process" || table == "subfunction" {
            let name = root
                .get(table.as_str())
                .and_then(|v| v.get_ref().as_array())
                .and_then(|a| a.get(*i))
                .and_then(|e| e.get_ref().as_table())
                .and_then(|t| t.get("name"))
                .and_then(|n| n.get_ref().as_str().map(str::to_owned));
            entity = Some(match name {
                Some(n) => format!("{table} {n:?}"),
                None => format!("{table} #{}", i + 1),
            });
            rest = tail;
        }
    }
    let keys: Vec<&str> = rest
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    let item = rest.iter().rev().find_map(|s| match s {
        Seg::Index(i) => Some(*i),
        Seg::Key(_) => None,
    });
    let mut field = String::new();
    if !keys.is_empty() {
        field = format!("field `{}`", keys.join("."));
        if let (Some(i), Some(Seg::Index(_))) = (item, rest.last()) {
            field.push_str(&format!(" (item {})", i + 1));
        }
    }
    match (entity, field.is_empty()) {
        (Some(e), true) => e,
        (Some(e), false) => format!("{e}, {field}"),
        (None, false) => field,
        (None, true) => "top level".to_owned(),
    }
}

/// What a field takes, for type errors: (field, description).
fn field_help(segs: &[Seg]) -> Option<(String, String)> {
    let keys: Vec<&str> = segs
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    let int = |r: (i64, i64)| format!("an integer between {} and {}", r.0, r.1);
    let takes = match keys.as_slice() {
        ["name"] => format!("a name of 1 to {MAX_COLLAB_NAME} characters from A-Z a-z 0-9 _ -"),
        ["coordinator"] => "\"auto\" or the name of a logical process".into(),
        ["secure"] => "true or false".into(),
        ["state_dir"] => "a directory path (a string)".into(),
        ["report_interval_ms"] => int(REPORT_INTERVAL),
        ["ring_capacity"] => {
            format!("a power of two between {MIN_RING_CAPACITY} and {MAX_RING_CAPACITY}")
        }
        ["grace_ms"] => int(GRACE),
        ["build"] | ["process", "command"] => {
            "an array of strings: the program, then its arguments".into()
        }
        ["subfunction"] => "[[subfunction]] tables".into(),
        ["process"] => "[[process]] tables".into(),
        ["subfunction", "name"] => {
            format!("a name of 1 to {MAX_SUBFN_NAME} characters from A-Z a-z 0-9 _ - .")
        }
        ["subfunction", "partitions"] => int((1, MAX_PARTITIONS)),
        ["process", "name"] => {
            format!("a name of 1 to {MAX_GROUP_NAME} characters from A-Z a-z 0-9 _ -")
        }
        ["process", "instances"] => int((1, MAX_INSTANCES)),
        ["process", "hosts"] => "an array of sub-function patterns (strings)".into(),
        ["process", "env", ..] => return Some(("env".into(), "a table of string values".into())),
        ["process", "restart"] => "\"permanent\", \"transient\" or \"temporary\"".into(),
        ["process", "max_restarts"] => int(MAX_RESTARTS),
        ["process", "within_secs"] => int(WITHIN_SECS),
        _ => return None,
    };
    let field = keys.last()?.to_string();
    Some((field, takes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 1), (1, 2));
        assert_eq!(line_col(t, 2), (1, 3));
        assert_eq!(line_col(t, 3), (2, 1));
        // 'é' is two bytes; 'é' starts at 5.
        assert_eq!(line_col(t, 5), (2, 3));
        assert_eq!(line_col(t, 6), (2, 3));
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, 8), (3, 1));
        assert_eq!(line_col(t, 100), (3, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }

    #[test]
    fn describe_paths() {
        let text = "name = \"x\"\n[[process]]\nname = \"p\"\nhosts = [\"a\", \"b\"]\nenv = { K = \"v\" }\n";
        let root = DeTable::parse(text).unwrap();
        let at = |needle: &str| {
            let i = text.find(needle).unwrap();
            describe(
                root.get_ref(),
                &locate(root.get_ref(), &(i..i + needle.len())),
            )
        };
        assert_eq!(at("\"x\""), "field `name`");
        assert_eq!(at("\"b\""), "process \"p\", field `hosts` (item 2)");
        assert_eq!(at("K"), "process \"p\", field `env.K`");
        assert_eq!(at("[[process]]"), "process \"p\"");
    }

    #[test]
    fn summaries() {
        let s = summarize((0..10).map(|i| i.to_string()));
        assert_eq!(s, "0, 1, 2, 3, 4, 5, 6, 7, ... (10 in all)");
        assert_eq!(summarize(["a".to_string()].into_iter()), "a");
    }
}
