//! The config file as written: serde structs with `deny_unknown_fields`.
//!
//! Every value that a later check may refuse is [`Spanned`], so that the
//! refusal can point at it; nothing here is checked beyond its TOML type.
//! An unknown field anywhere is an error (a typo must not be ignored).

use serde::Deserialize;
use shmcollab_runtime::plan::RestartType;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) coordinator: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) secure: Option<bool>,
    #[serde(default)]
    pub(super) state_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) report_interval_ms: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) ring_capacity: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) grace_ms: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) placement: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) sync: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) build: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) subfunction: Vec<RawSubfn>,
    #[serde(default)]
    pub(super) process: Vec<RawProcess>,
}

/// A `[[subfunction]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubfn {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) partitions: Option<Spanned<i64>>,
}

/// A `[[process]]` table (a process group).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcess {
    pub(super) name: Spanned<String>,
    pub(super) command: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) instances: Option<Spanned<i64>>,
    pub(super) hosts: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) env: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    pub(super) restart: Option<RestartType>,
    #[serde(default)]
    pub(super) max_restarts: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) within_secs: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) sandbox: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) user: Option<Spanned<String>>,
}
