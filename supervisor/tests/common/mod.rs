//! What the config tests share: parsing a text as if it were a file, and
//! checking an error's place and wording.
#![allow(dead_code)] // each test file uses its own subset

use shmcollab_supervisor::config::{Config, ConfigError};
use std::path::Path;

pub fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/nonexistent/cfg/config.toml"))
}

/// The error for `text`, checked to be at `line:col` and to name `field`.
/// Returns the displayed message.
pub fn error_at(text: &str, line: usize, col: usize, field: &str) -> String {
    let e = match parse(text) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert_eq!(e.location(), Some((line, col)), "{shown}");
    let prefix = format!("/nonexistent/cfg/config.toml:{line}:{col}: ");
    assert!(shown.starts_with(&prefix), "{shown}");
    assert!(shown.contains(field), "{shown} does not name {field}");
    shown
}

/// A small valid config plus `extra` lines appended.
pub fn small(extra: &str) -> String {
    format!(
        "name = \"t\"\n\n[[subfunction]]\nname = \"a\"\n\n[[process]]\nname = \"p\"\n\
         command = [\"prog\"]\nhosts = [\"a\"]\n{extra}"
    )
}
