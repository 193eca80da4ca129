//! Why a config file was refused, and where.
//!
//! Every refusal names the file, the line and column (1-based, columns in
//! characters) and the table and field, and says what was expected: a user
//! fixing a config should not have to guess which of eight `[[process]]`
//! tables is meant. Our own checks know their spans; for toml's and serde's
//! errors (syntax, unknown or missing fields, wrong types) the span is
//! located in the parsed document here ([`from_toml`]) to find the table and
//! field it falls in.

use super::{
    GRACE, MAX_COLLAB_NAME, MAX_GROUP_NAME, MAX_INSTANCES, MAX_PARTITIONS, MAX_RESTARTS,
    MAX_RING_CAPACITY, MAX_SUBFN_NAME, MIN_RING_CAPACITY, REPORT_INTERVAL, WITHIN_SECS,
};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

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

/// The [`ConfigError`] for an error of toml or serde in `text`: a syntax
/// error, or valid TOML that does not fit the schema (unknown field, missing
/// field, wrong type). Names the table and field at the error's span, and
/// for a type error what the field takes.
pub(super) fn from_toml(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let (line, column) = line_col(text, span.start);
    let path = path.to_path_buf();
    match DeTable::parse(text) {
        Err(_) => {
            // A syntax error: name the key when the recovered document
            // has one there.
            let (root, _) = DeTable::parse_recoverable(text);
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
}
