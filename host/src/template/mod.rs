//! Output templates: parsed once, checked against the path rules when a job is
//! created, rendered once per output.
//!
//! A job names where its outputs go with a template such as
//! `thumbs/{dirname}/{barename}.{autoext}`. This module is the only place that
//! knows the template syntax, its variables and the path rules, so that the API
//! (job creation, dry run) and the workers apply exactly the same rules.
//!
//! The life of a template:
//!
//! 1. [`Template::parse`] checks the syntax: known variables, `{{`/`}}` escapes,
//!    closed braces. An unknown variable is an error at job creation, never at
//!    run time.
//! 2. [`Template::check_rules`] checks the path rules against the job (its
//!    buckets, input prefix and tags), also at job creation, before anything
//!    is stored.
//! 3. [`Template::render`] renders the key of one output of one source object,
//!    and checks it with the key rules ([`check_key`]). A key that breaks them
//!    fails its task, and nothing is written.
//!
//! # Variables
//!
//! Names as in the cloud IMM variables:
//!
//! | variable | value |
//! |---|---|
//! | `{bucket}` | the source bucket |
//! | `{key}` | the full source key, `photos/2024/cat.jpg` |
//! | `{dirname}` | the key without its file name and without a trailing `/`: `photos/2024`; empty for a top-level key |
//! | `{basename}` | the file name: `cat.jpg` |
//! | `{barename}` | the file name without its last extension: `cat`; `archive.tar.gz` gives `archive.tar` |
//! | `{ext}` | the last extension, without the dot: `jpg`; empty if none |
//! | `{autoext}` | the extension the plugin declared for this output; the source `{ext}` if it declared none |
//! | `{year}` `{mon}` `{day}` `{hour}` `{min}` `{sec}` | the object's last-modified time, UTC, zero-padded (4 and 2 digits); the task time if the store gave none |
//! | `{t_year}` `{t_mon}` `{t_day}` `{t_hour}` `{t_min}` `{t_sec}` | the task's time, UTC, zero-padded |
//! | `{index}` | the output's number, 1-based, for a plugin that writes several outputs |
//! | `{tags.NAME}` | the job's tag `NAME` (`NAME` is `[A-Za-z0-9_-]+`) |
//! | `{jobid}` | the job's id |
//! | `{etag}` | the object's ETag, without quotes (and without a weak `W/` prefix) |
//!
//! `{{` and `}}` are a literal `{` and `}`.
//!
//! A file name's extension is the text after its last `.`, unless that dot is
//! the first character (`.bashrc` has no extension, as in most tools) or the
//! last (`notes.` has none either). So `{barename}` plus, when `{ext}` is not
//! empty, `.` and `{ext}`, is always `{basename}` again.
//!
//! ## Empty `{dirname}`, `{ext}` and `{autoext}`
//!
//! The usual templates are written for keys in folders and files with an
//! extension: `thumbs/{dirname}/{barename}.{ext}`. For a top-level key `cat`
//! they would give `thumbs//cat.`, which breaks the key rules (an empty
//! segment) or is not what anyone meant (a trailing dot). So:
//!
//! - an empty `{dirname}` swallows the `/` written right after it in the
//!   template: `thumbs/{dirname}/{basename}` renders `cat.jpg` as
//!   `thumbs/cat.jpg`;
//! - an empty `{ext}` or `{autoext}` swallows the `.` written right before it in
//!   the template: `{barename}.{ext}` renders `README` as `README`.
//!
//! Only a literal `/` or `.` of the template is swallowed, never text that a
//! variable produced, and only the one character next to the variable.
//!
//! # Path rules (checked at job creation, by [`Template::check_rules`])
//!
//! 1. The output path does not end with `/`: it names an object, not a folder.
//! 2. Its file name (the text after the template's last `/`) contains at least
//!    one variable, else every source would write the same few keys.
//! 3. The template's fixed text cannot break the key rules below whatever the
//!    variables hold: no leading `/`, no `//`, no `.` or `..` segment, no
//!    control character, not over 1024 bytes. Such a template would fail every
//!    task, so it is refused up front.
//! 4. Every `{tags.NAME}` names one of the job's tags.
//! 5. In the same bucket, a template cannot render a source key to itself
//!    (it would overwrite its source). Checked by rendering sample keys under
//!    the input prefix; rule 6 already implies it, this rule exists to give the
//!    clearer message for `{dirname}/{barename}.{autoext}` and the like.
//! 6. In the same bucket, no output can be selected by the job (recursion:
//!    outputs would be listed and processed again). The keys a template can
//!    render all start with its fixed head (the text before its first
//!    variable, less a final `.` that an empty `{ext}` right after it would
//!    swallow), followed by anything. Accepted when it provably cannot happen:
//!    - the head holds a folder (`thumbs/…`, `photos/small/…`): a listing
//!      never selects a key under the head (`select::output_head`), so this is
//!      refused only when the input prefix lies inside the head;
//!    - otherwise, the head and the input prefix are apart (neither starts
//!      with the other), or the suffix filter can keep no output: every
//!      output's file name ends in the template's final literal text (or, for
//!      `.{autoext}`, in `.` and an extension the plugin declares in
//!      `info().writes`), and no suffix can match those endings.
//!
//!    The second direction of the overlap matters: with input prefix
//!    `photos/`, the template `{key}.thumb.jpg` (head empty) writes
//!    `photos/cat.jpg.thumb.jpg`, inside the input. A manifest's selection is
//!    fixed: it only needs a head (its planner refuses listed keys under it).
//!    At run time the worker also refuses any output key the job's own
//!    selection would take (an output opened without an extension takes the
//!    source's, which the proof above cannot see).
//!
//! # Key rules (checked on every rendered key, by [`check_key`])
//!
//! Not empty, no leading `/`, no trailing `/`, no empty segment (`//`), no `.`
//! or `..` segment, no control character, at most [`MAX_KEY_LEN`] bytes. These
//! are the rules of `object_store::path::Path::parse`, plus the two slashes
//! that `Path::parse` would silently strip, so that a rendered key is stored
//! under exactly the name that was rendered.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod error;
mod render;
mod rules;

pub use error::{KeyRule, TemplateError};
pub use render::Vars;
pub use rules::{RuleContext, check_key, check_variable_value};
use rules::{is_extension, recursion_where, shorten, split_key, unicode_name};

/// The longest key a template may render, in bytes (the S3 limit).
pub const MAX_KEY_LEN: usize = 1024;

/// The variables a template may use, for documentation and error messages.
/// The last entry stands for any `{tags.NAME}`.
pub const VARIABLES: &[&str] = &[
    "bucket",
    "key",
    "dirname",
    "basename",
    "barename",
    "ext",
    "autoext",
    "year",
    "mon",
    "day",
    "hour",
    "min",
    "sec",
    "t_year",
    "t_mon",
    "t_day",
    "t_hour",
    "t_min",
    "t_sec",
    "index",
    "jobid",
    "etag",
    "tags.NAME",
];

/// The longest extension a plugin may declare for `{autoext}`.
const MAX_EXT_LEN: usize = 32;

/// A parsed output template. Cheap to render many times.
///
/// Serialises as its source text; deserialising parses it (but cannot check
/// the path rules, which need the job: call [`Template::check_rules`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Template {
    /// The template as written.
    source: String,
    /// Literal text (escapes decoded, adjacent pieces merged) and variables.
    segments: Vec<Segment>,
    /// The literal text before the first variable, escapes decoded.
    head: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Bucket,
    Key,
    Dirname,
    Basename,
    Barename,
    Ext,
    Autoext,
    /// Object time (last modified, else task time).
    Time(TimeField),
    /// Task time.
    TaskTime(TimeField),
    Index,
    Jobid,
    Etag,
    Tag(String),
    /// A variable the style's plugin sets per output (contract 0.2.0), e.g. `{page}`.
    Output(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeField {
    Year,
    Mon,
    Day,
    Hour,
    Min,
    Sec,
}

impl Var {
    fn from_name(name: &str) -> Option<Var> {
        use TimeField::*;
        Some(match name {
            "bucket" => Var::Bucket,
            "key" => Var::Key,
            "dirname" => Var::Dirname,
            "basename" => Var::Basename,
            "barename" => Var::Barename,
            "ext" => Var::Ext,
            "autoext" => Var::Autoext,
            "year" => Var::Time(Year),
            "mon" => Var::Time(Mon),
            "day" => Var::Time(Day),
            "hour" => Var::Time(Hour),
            "min" => Var::Time(Min),
            "sec" => Var::Time(Sec),
            "t_year" => Var::TaskTime(Year),
            "t_mon" => Var::TaskTime(Mon),
            "t_day" => Var::TaskTime(Day),
            "t_hour" => Var::TaskTime(Hour),
            "t_min" => Var::TaskTime(Min),
            "t_sec" => Var::TaskTime(Sec),
            "index" => Var::Index,
            "jobid" => Var::Jobid,
            "etag" => Var::Etag,
            _ => return None,
        })
    }

    fn name(&self) -> Cow<'static, str> {
        use TimeField::*;
        Cow::Borrowed(match self {
            Var::Bucket => "bucket",
            Var::Key => "key",
            Var::Dirname => "dirname",
            Var::Basename => "basename",
            Var::Barename => "barename",
            Var::Ext => "ext",
            Var::Autoext => "autoext",
            Var::Time(Year) => "year",
            Var::Time(Mon) => "mon",
            Var::Time(Day) => "day",
            Var::Time(Hour) => "hour",
            Var::Time(Min) => "min",
            Var::Time(Sec) => "sec",
            Var::TaskTime(Year) => "t_year",
            Var::TaskTime(Mon) => "t_mon",
            Var::TaskTime(Day) => "t_day",
            Var::TaskTime(Hour) => "t_hour",
            Var::TaskTime(Min) => "t_min",
            Var::TaskTime(Sec) => "t_sec",
            Var::Index => "index",
            Var::Jobid => "jobid",
            Var::Etag => "etag",
            Var::Tag(name) => return Cow::Owned(format!("tags.{name}")),
            Var::Output(name) => return Cow::Owned(name.clone()),
        })
    }

    /// Whether an empty value swallows the `.` written right before it.
    fn swallows_dot(&self) -> bool {
        matches!(self, Var::Ext | Var::Autoext)
    }
}

impl Template {
    /// Parses a template: its syntax, its escapes and that every variable is
    /// known. The path rules need the job: see [`Template::check_rules`].
    pub fn parse(template: &str) -> Result<Template, TemplateError> {
        if template.is_empty() {
            return Err(TemplateError::Empty);
        }
        let owned = || template.to_string();
        let bytes = template.as_bytes();
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    literal.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    literal.push('}');
                    i += 2;
                }
                b'}' => return Err(TemplateError::UnmatchedClose { template: owned(), at: i }),
                b'{' => {
                    let at = i;
                    let rest = &template[i + 1..];
                    // A `{` before the closing `}` means this one is not closed:
                    // `{a{b}` is a mistake, not a variable named `a{b`.
                    let end = match rest.find(['{', '}']) {
                        Some(j) if rest.as_bytes()[j] == b'}' => j,
                        _ => return Err(TemplateError::UnclosedBrace { template: owned(), at }),
                    };
                    let name = &rest[..end];
                    let var = if name.is_empty() {
                        return Err(TemplateError::EmptyVariable { template: owned(), at });
                    } else if let Some(tag) = name.strip_prefix("tags.") {
                        if !is_tag_name(tag) {
                            return Err(TemplateError::BadTagName { template: owned(), name: tag.to_string(), at });
                        }
                        Var::Tag(tag.to_string())
                    } else if let Some(var) = Var::from_name(name) {
                        var
                    } else if name != "tags" && crate::runtime::check_variable_name(name).is_ok() {
                        // Maybe one the style's plugin sets: `check_rules` asks it.
                        Var::Output(name.to_string())
                    } else {
                        return Err(TemplateError::UnknownVariable { template: owned(), name: name.to_string(), at });
                    };
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Var(var));
                    i += 1 + end + 1;
                }
                _ => {
                    // Copy the run of ordinary text up to the next brace.
                    let run = template[i..].find(['{', '}']).map_or(bytes.len(), |j| i + j);
                    literal.push_str(&template[i..run]);
                    i = run;
                }
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        let head = match segments.first() {
            Some(Segment::Literal(text)) => text.clone(),
            _ => String::new(),
        };
        Ok(Template { source: template.to_string(), segments, head })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template uses a variable, named without braces: `key`,
    /// `tags.owner`; `tags` asks whether it uses any tag.
    pub fn uses(&self, var: &str) -> bool {
        let var = var.strip_prefix('{').and_then(|v| v.strip_suffix('}')).unwrap_or(var);
        self.vars().any(|v| match v {
            Var::Tag(_) if var == "tags" => true,
            other => other.name() == var,
        })
    }

    /// The names of the job tags the template uses, in order, repeats included.
    pub fn tag_names(&self) -> impl Iterator<Item = &str> {
        self.vars().filter_map(|v| match v {
            Var::Tag(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The literal text before the first variable, escapes decoded: every
    /// rendered key starts with it (except that an empty `{ext}` right after it
    /// swallows a final `.`).
    pub fn literal_head(&self) -> &str {
        &self.head
    }

    fn vars(&self) -> impl Iterator<Item = &Var> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(v) => Some(v),
            Segment::Literal(_) => None,
        })
    }

    /// The head that every rendered key surely starts with: the literal head,
    /// less a final `.` that an empty `{ext}` right after it would swallow.
    pub fn fixed_head(&self) -> &str {
        match self.segments.get(1) {
            Some(Segment::Var(var)) if var.swallows_dot() => self.head.strip_suffix('.').unwrap_or(&self.head),
            _ => &self.head,
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Template {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl TryFrom<String> for Template {
    type Error = TemplateError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Template::parse(&s)
    }
}

impl From<Template> for String {
    fn from(t: Template) -> String {
        t.source
    }
}

fn is_tag_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests;
