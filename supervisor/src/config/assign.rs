//! The `[[process]]` groups: their settings, what their `hosts` select,
//! and the LPs they give with the sub-functions dealt to each.
//!
//! Apart from `validate` because a group is checked in several steps that
//! each refuse with their own message (name, command, limits, environment,
//! every pattern, the instance count against the selection and the slot
//! limit), and at the end every sub-function must be hosted by exactly one
//! group. The rules themselves (pattern matching, round-robin dealing,
//! instance names) are in `partition`.

use super::error::ConfigError;
use super::partition::{deal, instance_name, Pattern, Subfn};
use super::raw::{RawConfig, RawProcess};
use super::validate::{of, summarize, summarize_subfns, top, Source};
use super::{
    DEFAULT_MAX_RESTARTS, DEFAULT_SANDBOX, DEFAULT_WITHIN_SECS, MAX_GROUP_NAME, MAX_INSTANCES,
    MAX_RESTARTS, WITHIN_SECS,
};
use shmcollab_runtime::plan::LpPlan;
use shmcollab_shm::registry::MAX_SLOTS;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

/// What a group's LPs share.
struct Group {
    command: Vec<String>,
    instances: usize,
    max_restarts: u32,
    within_secs: u64,
    env: Vec<(String, String)>,
    sandbox: bool,
    user: Option<String>,
}

impl Source<'_> {
    /// The LPs of every group, in declaration order (the index is the
    /// registry slot), each with its sub-functions.
    pub(super) fn processes(
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
            self.group_name(g, p, &seen)?;
            seen.insert(gname, p.name.span());
            let group = self.group(p, dir)?;
            let selected = self.select(raw, p, subfns, &owner)?;
            for &i in &selected {
                owner[i] = Some(g);
            }
            self.check_instances(p, &group, &selected, subfns, lps.len())?;
            let names: Vec<String> = selected.iter().map(|&i| subfns[i].name.clone()).collect();
            for (k, hosted) in deal(&names, group.instances).into_iter().enumerate() {
                lps.push(LpPlan {
                    name: instance_name(gname, k, group.instances),
                    group: gname.clone(),
                    command: group.command.clone(),
                    cwd: dir.to_path_buf(),
                    env: group.env.clone(),
                    subfns: hosted,
                    restart: p.restart.unwrap_or_default(),
                    max_restarts: group.max_restarts,
                    within_secs: group.within_secs,
                    sandbox: group.sandbox,
                    user: group.user.clone(),
                });
            }
        }
        self.all_hosted(raw, subfns, &owner)?;
        Ok(lps)
    }

    /// Group number `g`'s name: well formed, not "auto", not seen before.
    fn group_name(
        &self,
        g: usize,
        p: &RawProcess,
        seen: &HashMap<&str, Range<usize>>,
    ) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// A group's command, instance count, restart limits and environment.
    fn group(&self, p: &RawProcess, dir: &Path) -> Result<Group, ConfigError> {
        let gname = p.name.get_ref();
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
        Ok(Group {
            command,
            instances,
            max_restarts,
            within_secs,
            env: self.env(p)?,
            sandbox: p.sandbox.as_ref().map_or(DEFAULT_SANDBOX, |b| *b.get_ref()),
            user: self.user(p)?,
        })
    }

    /// `user`: a user that exists, and the right to become it (root, or
    /// CAP_SETUID and CAP_SETGID): checked here so that `launch` refuses
    /// with the line rather than at the LP's first start.
    fn user(&self, p: &RawProcess) -> Result<Option<String>, ConfigError> {
        let Some(u) = &p.user else {
            return Ok(None);
        };
        let ctx = || of("process", p.name.get_ref(), "user");
        let name = u.get_ref();
        let well_formed = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !well_formed {
            return Err(self.err(
                u.span(),
                ctx(),
                format!("expected a user name (letters, digits, '_', '.', '-'), found {name:?}"),
            ));
        }
        if let Err(why) = shmcollab_runtime::sandbox::lookup_user(name) {
            return Err(self.err(u.span(), ctx(), format!("expected an existing user: {why}")));
        }
        if !shmcollab_runtime::sandbox::may_switch_user() {
            return Err(self.err(
                u.span(),
                ctx(),
                format!(
                    "running a process as user {name:?} needs root (or CAP_SETUID and \
                     CAP_SETGID); launch as root or remove `user`"
                ),
            ));
        }
        Ok(Some(name.clone()))
    }

    /// `env`: variable names and values an exec can take. Sorted by key (a
    /// `BTreeMap` iterates so).
    fn env(&self, p: &RawProcess) -> Result<Vec<(String, String)>, ConfigError> {
        let gname = p.name.get_ref();
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
        Ok(env)
    }

    /// What the group's `hosts` select: indices into `subfns`, in table
    /// order, each once. A sub-function that another group (`owner`)
    /// hosts is refused; two patterns of this group may overlap.
    fn select(
        &self,
        raw: &RawConfig,
        p: &RawProcess,
        subfns: &[Subfn],
        owner: &[Option<usize>],
    ) -> Result<Vec<usize>, ConfigError> {
        let gname = p.name.get_ref();
        if p.hosts.get_ref().is_empty() {
            return Err(self.err(
                p.hosts.span(),
                of("process", gname, "hosts"),
                "expected at least one sub-function pattern, found []".into(),
            ));
        }
        let mut selected: Vec<usize> = Vec::new();
        let mut picked = vec![false; subfns.len()];
        for pat in p.hosts.get_ref() {
            let s = pat.get_ref();
            let Some(pattern) = Pattern::parse(s) else {
                return Err(self.err(
                    pat.span(),
                    of("process", gname, "hosts"),
                    format!(
                        "expected a sub-function name, a partitioned sub-function's base \
                         name, or a prefix ending in a single \"*\", found {s:?}"
                    ),
                ));
            };
            let mut matched = false;
            for (i, sf) in subfns.iter().enumerate() {
                if !pattern.selects(sf) {
                    continue;
                }
                matched = true;
                if let Some(other) = owner[i] {
                    let other = &raw.process[other].name;
                    return Err(self.err(
                        pat.span(),
                        of("process", gname, "hosts"),
                        format!(
                            "pattern {s:?} selects sub-function {:?}, which process {:?} \
                             (line {}) already hosts; a sub-function is hosted by one \
                             process group",
                            sf.name,
                            other.get_ref(),
                            self.line_of(&other.span()),
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
        selected.sort_unstable();
        Ok(selected)
    }

    /// Every instance hosts at least one sub-function, and the LPs fit the
    /// registry's slots (`before` LPs come from earlier groups).
    fn check_instances(
        &self,
        p: &RawProcess,
        group: &Group,
        selected: &[usize],
        subfns: &[Subfn],
        before: usize,
    ) -> Result<(), ConfigError> {
        let gname = p.name.get_ref();
        let instances = group.instances;
        let span = p.instances.as_ref().map_or(p.name.span(), |v| v.span());
        if instances > selected.len() {
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
        if before + instances > MAX_SLOTS as usize {
            return Err(self.err(
                span,
                of("process", gname, "instances"),
                format!(
                    "expected at most {MAX_SLOTS} logical processes in all, found {} with \
                     this group ({before} before it)",
                    before + instances,
                ),
            ));
        }
        Ok(())
    }

    /// Every sub-function has an owner; the first that has none is refused
    /// at its declaration.
    fn all_hosted(
        &self,
        raw: &RawConfig,
        subfns: &[Subfn],
        owner: &[Option<usize>],
    ) -> Result<(), ConfigError> {
        let Some(i) = owner.iter().position(Option::is_none) else {
            return Ok(());
        };
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
        Err(self.err(
            decl.name.span(),
            of("subfunction", base, "name"),
            format!(
                "{what}; expected a [[process]] whose `hosts` selects it (e.g. hosts = [{:?}])",
                sf.family.as_deref().unwrap_or(&sf.name)
            ),
        ))
    }
}
