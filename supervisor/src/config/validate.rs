//! The checks that turn the raw form into a [`Config`]: ranges, names,
//! commands, the sub-function table and the coordinator; the process groups
//! and the assignment are in `assign`.
//!
//! Every check refuses with the span of the offending key or value and says
//! what was expected and what was found, so that each refusal reads
//! `path:line:column: where: what`. The checks run in the order of the file
//! (top-level fields, sub-functions, processes, then the coordinator, which
//! names an LP): the first problem is the one reported.

use super::error::{line_col, ConfigError};
use super::partition::{expand, partition_name, Subfn};
use super::raw::RawConfig;
use super::{
    Config, DEFAULT_GRACE_MS, DEFAULT_REPORT_INTERVAL_MS, DEFAULT_RING_CAPACITY, DEFAULT_STATE_DIR,
    GRACE, MAX_COLLAB_NAME, MAX_PARTITIONS, MAX_RING_CAPACITY, MAX_SUBFN_NAME, MIN_RING_CAPACITY,
    REPORT_INTERVAL,
};
use shmcollab_runtime::plan::resolve_program;
use shmcollab_runtime::plan::{CoordinatorChoice, LpPlan, Placement, Plan, SyncMode};
use shmcollab_shm::registry::MAX_SUBFNS;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The text being validated and the file it came from: what every error
/// needs to say where it is.
pub(super) struct Source<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
}

/// Context string for a field of the top-level table.
pub(super) fn top(field: &str) -> String {
    format!("field `{field}`")
}

/// Context string for a field of a `[[kind]]` table named `name`.
pub(super) fn of(kind: &str, name: &str, field: &str) -> String {
    format!("{kind} {name:?}, field `{field}`")
}

fn expected_int(range: (i64, i64), found: i64) -> String {
    format!(
        "expected an integer between {} and {}, found {found}",
        range.0, range.1
    )
}

impl Source<'_> {
    pub(super) fn err(&self, span: Range<usize>, context: String, message: String) -> ConfigError {
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
    pub(super) fn end_span(&self) -> Range<usize> {
        let end = self.text.trim_end().len();
        end..end
    }

    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    /// An integer in `range`, or `default` when the field is absent.
    pub(super) fn int(
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

    /// A name of 1 to `max` bytes from `[A-Za-z0-9_-]` and `extra`.
    pub(super) fn name(
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

    /// Check a command (non-empty, no NUL) and resolve its program the way
    /// the manager does ([`resolve_program`]), against `dir`.
    pub(super) fn command(
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
        // Only a relative program with a '/' changes (an absolute one joins
        // to itself, one without '/' is left to PATH); only it can fail.
        match resolve_program(p, dir).into_os_string().into_string() {
            Ok(resolved) => out[0] = resolved,
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
        Ok(out)
    }

    /// The whole config.
    pub(super) fn validate(&self, raw: RawConfig, dir: PathBuf) -> Result<Config, ConfigError> {
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
        let ring_capacity = self.ring_capacity(&raw.ring_capacity)?;
        let grace_ms = self.int(&raw.grace_ms, GRACE, DEFAULT_GRACE_MS as i64, || {
            top("grace_ms")
        })? as u64;
        let placement = self.placement(&raw.placement)?;
        let sync = self.sync(&raw.sync)?;
        let state_dir = self.state_dir(&raw.state_dir, &dir)?;
        let build = match &raw.build {
            None => None,
            Some(b) => Some(self.command(b, &dir, || top("build"))?),
        };

        let subfns = self.subfunctions(&raw)?;
        let lps = self.processes(&raw, &subfns, &dir)?;
        let coordinator = self.coordinator(&raw.coordinator, &lps)?;

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
                sync,
            },
        })
    }

    fn ring_capacity(&self, value: &Option<Spanned<i64>>) -> Result<usize, ConfigError> {
        let Some(v) = value else {
            return Ok(DEFAULT_RING_CAPACITY);
        };
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
        Ok(n as usize)
    }

    fn placement(&self, value: &Option<Spanned<String>>) -> Result<Placement, ConfigError> {
        match value {
            None => Ok(Placement::Auto),
            Some(p) => match p.get_ref().as_str() {
                "auto" => Ok(Placement::Auto),
                "spread" => Ok(Placement::Spread),
                "compact" => Ok(Placement::Compact),
                "paired" => Ok(Placement::Paired),
                "none" => Ok(Placement::None),
                other => Err(self.err(
                    p.span(),
                    top("placement"),
                    format!(
                        "expected \"auto\", \"spread\", \"compact\", \"paired\" or \"none\", \
                         found {other:?}"
                    ),
                )),
            },
        }
    }

    fn sync(&self, value: &Option<Spanned<String>>) -> Result<SyncMode, ConfigError> {
        let Some(v) = value else {
            return Ok(SyncMode::Always);
        };
        match v.get_ref().as_str() {
            "always" => Ok(SyncMode::Always),
            "batch" => Ok(SyncMode::Batch),
            "off" => Ok(SyncMode::Off),
            other => Err(self.err(
                v.span(),
                top("sync"),
                format!("expected \"always\", \"batch\" or \"off\", found {other:?}"),
            )),
        }
    }

    fn state_dir(
        &self,
        value: &Option<Spanned<String>>,
        dir: &Path,
    ) -> Result<PathBuf, ConfigError> {
        match value {
            None => Ok(dir.join(DEFAULT_STATE_DIR)),
            Some(s) if s.get_ref().is_empty() || s.get_ref().contains('\0') => Err(self.err(
                s.span(),
                top("state_dir"),
                format!("expected a directory path, found {:?}", s.get_ref()),
            )),
            Some(s) => Ok(dir.join(s.get_ref())),
        }
    }

    /// `coordinator`: "auto" or the name of one LP (its slot).
    fn coordinator(
        &self,
        value: &Option<Spanned<String>>,
        lps: &[LpPlan],
    ) -> Result<CoordinatorChoice, ConfigError> {
        let c = match value {
            None => return Ok(CoordinatorChoice::Auto),
            Some(c) if c.get_ref() == "auto" => return Ok(CoordinatorChoice::Auto),
            Some(c) => c,
        };
        if let Some(i) = lps.iter().position(|lp| lp.name == *c.get_ref()) {
            return Ok(CoordinatorChoice::Slot(i as u32));
        }
        let wanted = c.get_ref();
        let members: Vec<&str> = lps
            .iter()
            .filter(|lp| lp.group == *wanted)
            .map(|lp| lp.name.as_str())
            .collect();
        let message = if let (Some(first), Some(last)) = (members.first(), members.last()) {
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
        Err(self.err(c.span(), top("coordinator"), message))
    }

    /// The sub-function table: the declarations, partitioned ones expanded.
    pub(super) fn subfunctions(&self, raw: &RawConfig) -> Result<Vec<Subfn>, ConfigError> {
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
            let partitions = match &sf.partitions {
                None => None,
                Some(_) => Some(self.partitions(raw, decl)?),
            };
            out.extend(expand(base, partitions, decl));
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

    /// `partitions` of declaration `decl`, in range and with generated names
    /// short enough.
    fn partitions(&self, raw: &RawConfig, decl: usize) -> Result<i64, ConfigError> {
        let sf = &raw.subfunction[decl];
        let base = sf.name.get_ref();
        let n = self.int(&sf.partitions, (1, MAX_PARTITIONS), 1, || {
            of("subfunction", base, "partitions")
        })?;
        let longest = partition_name(base, n - 1);
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
        Ok(n)
    }
}

/// At most 8 names, comma separated.
pub(super) fn summarize(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    let mut out = names.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 8 {
        out.push_str(&format!(", ... ({} in all)", names.len()));
    }
    out
}

/// The declared sub-functions, families shown as `count/0..count/7`.
pub(super) fn summarize_subfns(raw: &RawConfig, subfns: &[Subfn]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let s = summarize((0..10).map(|i| i.to_string()));
        assert_eq!(s, "0, 1, 2, 3, 4, 5, 6, 7, ... (10 in all)");
        assert_eq!(summarize(["a".to_string()].into_iter()), "a");
    }
}
