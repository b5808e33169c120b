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

/// Where a template's outputs can land, for [`TemplateError::Recursion`].
fn recursion_where(head: &str, input_prefix: &str) -> String {
    match (head.is_empty(), input_prefix.is_empty()) {
        (true, true) => "it starts with a variable and the job selects the whole bucket".into(),
        (true, false) => {
            format!("it starts with a variable, so its outputs can land anywhere, `{input_prefix}` included")
        }
        (false, true) => format!("its outputs start with `{head}`, inside the whole bucket that the job selects"),
        (false, false) => format!("its outputs start with `{head}`, which overlaps the input prefix `{input_prefix}`"),
    }
}

/// What [`Template::check_rules`] needs to know about the job.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext<'a> {
    pub input_bucket: &'a str,
    pub output_bucket: &'a str,
    /// The prefix the job lists. For a job over an explicit list of keys, pass
    /// their longest common prefix: the check stays conservative.
    pub input_prefix: &'a str,
    /// The job's tags.
    pub tags: &'a BTreeMap<String, String>,
    /// The selection is a fixed list read from a manifest: outputs cannot join
    /// it, so the no-recursion rule only asks for a fixed head, and the
    /// planner refuses listed keys under that head.
    pub fixed_selection: bool,
    /// The selection's file-name suffix filter (`input.suffixes`); empty: none.
    pub name_suffixes: &'a [String],
    /// The extensions the style's plugin declares it writes (`info().writes`),
    /// the values `{autoext}` takes; empty: unknown.
    pub output_exts: &'a [String],
    /// The output variables the style's plugin declares it sets (contract 0.2.0).
    pub output_variables: &'a [String],
}

/// The values for rendering one output of one source object.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The source bucket.
    pub bucket: &'a str,
    /// The full source key.
    pub key: &'a str,
    /// The source's ETag as the store gave it, quotes and all.
    pub etag: Option<&'a str>,
    /// The source's last-modified time, in unix seconds.
    pub last_modified: Option<i64>,
    /// The task's time, in unix seconds.
    pub task_time: i64,
    /// The output's number, 1-based.
    pub index: u32,
    /// The extension the plugin declared for this output (a leading `.` is
    /// ignored); `None` falls back to the source's extension, `Some("")` means
    /// no extension.
    pub autoext: Option<&'a str>,
    pub jobid: &'a str,
    /// The job's tags.
    pub tags: &'a BTreeMap<String, String>,
    /// The output variables the plugin set for this output (contract 0.2.0).
    pub outputs: &'a [(String, String)],
}

/// A key rule that a key (or a template's fixed text) breaks. See
/// [`check_key`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRule {
    #[error("it is empty (key rule: a key is not empty)")]
    Empty,
    #[error("it starts with `/` (key rule: no leading `/`)")]
    LeadingSlash,
    #[error("it ends with `/` (key rule: a key names an object, so it does not end with `/`)")]
    TrailingSlash,
    #[error("it has an empty segment `//` (key rule: no empty segment)")]
    EmptySegment,
    #[error("it has a `{0}` segment (key rule: no `.` or `..` segment)")]
    DotSegment(String),
    #[error("it has the control character {} at byte {at} (key rule: no control character)", unicode_name(.ch))]
    ControlChar { ch: char, at: usize },
    #[error("it is {len} bytes long (key rule: at most {MAX_KEY_LEN} bytes)")]
    TooLong { len: usize },
    #[error("it holds a `/` (a variable's value is one key segment)")]
    Slash,
}

/// Why a template was refused, or could not render a key.
///
/// Each message quotes the template and names the rule it breaks.
/// [`TemplateError::rule`] gives a short stable code for the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    // --- syntax, from `parse` ---
    #[error("the output template is empty")]
    Empty,
    #[error(
        "template `{template}`: unknown variable `{{{name}}}` at byte {at}; known variables: {}",
        VARIABLES.join(", ")
    )]
    UnknownVariable { template: String, name: String, at: usize },
    #[error("template `{template}`: the `{{` at byte {at} is not closed; write `{{{{` for a literal `{{`")]
    UnclosedBrace { template: String, at: usize },
    #[error("template `{template}`: the `}}` at byte {at} closes nothing; write `}}}}` for a literal `}}`")]
    UnmatchedClose { template: String, at: usize },
    #[error("template `{template}`: `{{}}` at byte {at} names no variable; known variables: {}", VARIABLES.join(", "))]
    EmptyVariable { template: String, at: usize },
    #[error(
        "template `{template}`: bad tag name in `{{tags.{name}}}` at byte {at}; a tag name is letters, digits, `_` and `-`"
    )]
    BadTagName { template: String, name: String, at: usize },

    // --- path rules, from `check_rules` ---
    #[error(
        "template `{template}`: unknown tag `{{tags.{name}}}`; the job's tags are: {}",
        if known.is_empty() { "(none)".to_string() } else { known.join(", ") }
    )]
    UnknownTag { template: String, name: String, known: Vec<String> },
    #[error(
        "template `{template}`: `{{{name}}}` is neither a template variable (known: {}) nor an output variable of \
         the style's plugin (it declares {})",
        VARIABLES.join(", "),
        if declared.is_empty() { "none".to_string() } else { declared.iter().map(|d| format!("`{{{d}}}`")).collect::<Vec<_>>().join(", ") }
    )]
    UndeclaredVariable { template: String, name: String, declared: Vec<String> },
    #[error(
        "template `{template}`: ends with `/` (path rule: the output path names an object, so it does not end with `/`)"
    )]
    TrailingSlash { template: String },
    #[error(
        "template `{template}`: its file name `{file_name}` has no variable, so every source would write the same key \
         (path rule: the file name contains at least one variable)"
    )]
    FileNameWithoutVariable { template: String, file_name: String },
    #[error("template `{template}`: every key it renders would break a key rule: {rule}")]
    InvalidLiteral { template: String, rule: KeyRule },
    #[error(
        "template `{template}`: renders `{key}` to itself, so it would overwrite its source \
         (path rule: in the same bucket, a template cannot render a source key to itself)"
    )]
    OverwritesSource { template: String, key: String },
    #[error(
        "template `{template}`: {}, so outputs could be selected as inputs of bucket `{bucket}` and processed \
         again (path rule: in the same bucket, outputs stay out of the selection). Start the template with a \
         folder outside {}, write to another bucket, or select with a suffix filter (`--suffix`) that the \
         outputs' names cannot end with (a template ending in a fixed extension, or in `.{{autoext}}` with a \
         plugin that declares what it writes)",
        recursion_where(head, input_prefix),
        if input_prefix.is_empty() { "the bucket's selection".to_string() } else { format!("`{input_prefix}`") }
    )]
    Recursion { template: String, bucket: String, input_prefix: String, head: String },

    // --- rendering, from `render` ---
    #[error("template `{template}` rendered `{}` for source `{}`: {rule}", shorten(.key), shorten(.source_key))]
    InvalidKey { template: String, source_key: String, key: String, rule: KeyRule },
    #[error("template `{template}` uses `{{etag}}`, but the source `{}` has no ETag", shorten(.source_key))]
    NoEtag { template: String, source_key: String },
    #[error(
        "template `{template}` uses `{{autoext}}`, but the plugin declared the extension `{}` for source `{}`; \
         an extension is at most {MAX_EXT_LEN} letters, digits, `_`, `-`, `+` and inner dots",
        shorten(.ext),
        shorten(.source_key)
    )]
    BadExtension { template: String, source_key: String, ext: String },
    #[error(
        "template `{template}` uses `{{{name}}}`, but the plugin did not set it for output {index} of source `{}`",
        shorten(.source_key)
    )]
    MissingVariable { template: String, name: String, source_key: String, index: u32 },
    #[error("template `{template}`: the plugin set `{{{name}}}` to `{}`: {rule}", shorten(.value))]
    BadVariableValue { template: String, name: String, value: String, rule: KeyRule },
}

impl TemplateError {
    /// A short, stable code for the rule: for problem+json types and tests.
    pub fn rule(&self) -> &'static str {
        match self {
            TemplateError::Empty => "empty",
            TemplateError::UnknownVariable { .. } => "unknown-variable",
            TemplateError::UnclosedBrace { .. } => "unclosed-brace",
            TemplateError::UnmatchedClose { .. } => "unmatched-close",
            TemplateError::EmptyVariable { .. } => "empty-variable",
            TemplateError::BadTagName { .. } => "bad-tag-name",
            TemplateError::UnknownTag { .. } => "unknown-tag",
            TemplateError::TrailingSlash { .. } => "trailing-slash",
            TemplateError::FileNameWithoutVariable { .. } => "file-name-without-variable",
            TemplateError::InvalidLiteral { .. } => "invalid-literal",
            TemplateError::OverwritesSource { .. } => "overwrites-source",
            TemplateError::Recursion { .. } => "recursion",
            TemplateError::InvalidKey { .. } => "invalid-key",
            TemplateError::NoEtag { .. } => "no-etag",
            TemplateError::BadExtension { .. } => "bad-extension",
            TemplateError::UndeclaredVariable { .. } => "undeclared-variable",
            TemplateError::MissingVariable { .. } => "missing-variable",
            TemplateError::BadVariableValue { .. } => "bad-variable-value",
        }
    }

    /// Whether this error is about one object (a render error: the task
    /// fails) rather than about the template (the job is refused).
    pub fn is_render_error(&self) -> bool {
        matches!(
            self,
            TemplateError::InvalidKey { .. }
                | TemplateError::NoEtag { .. }
                | TemplateError::BadExtension { .. }
                | TemplateError::MissingVariable { .. }
                | TemplateError::BadVariableValue { .. }
        )
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

    /// Checks the path rules for a job (see the module docs): refused here,
    /// at job creation, rather than failing every task later.
    pub fn check_rules(&self, rules: &RuleContext) -> Result<(), TemplateError> {
        let template = || self.source.clone();

        // Rule 4: every tag exists; a missing one is the job's mistake, not the object's.
        for name in self.tag_names() {
            if !rules.tags.contains_key(name) {
                return Err(TemplateError::UnknownTag {
                    template: template(),
                    name: name.to_string(),
                    known: rules.tags.keys().cloned().collect(),
                });
            }
        }

        // Rule 4b: every other variable is one the style's plugin declares it sets.
        for var in self.vars() {
            if let Var::Output(name) = var
                && !rules.output_variables.iter().any(|v| v == name)
            {
                return Err(TemplateError::UndeclaredVariable {
                    template: template(),
                    name: name.clone(),
                    declared: rules.output_variables.to_vec(),
                });
            }
        }

        // Rule 1: names an object, not a folder. A trailing `/` of the
        // source text is always a literal one: no variable name holds a `/`.
        if self.source.ends_with('/') {
            return Err(TemplateError::TrailingSlash { template: template() });
        }

        // Rule 2: the file name part has a variable.
        let file_name = self.source.rsplit('/').next().unwrap_or(&self.source);
        if !self.last_path_segment_has_var() {
            return Err(TemplateError::FileNameWithoutVariable {
                template: template(),
                file_name: file_name.to_string(),
            });
        }

        // Rule 3: the fixed text cannot break the key rules whatever the
        // variables hold.
        self.check_literals().map_err(|rule| TemplateError::InvalidLiteral { template: template(), rule })?;

        if rules.input_bucket != rules.output_bucket {
            return Ok(());
        }

        // Rule 5: no source renders to itself. Checked before rule 6, which
        // implies it, because its message is the clearer one.
        let sample_outputs: Vec<(String, String)> =
            rules.output_variables.iter().map(|v| (v.clone(), "1".to_string())).collect();
        for sample in sample_keys(rules.input_prefix) {
            let (_, _, _, ext) = split_key(&sample);
            for autoext in [None, Some(ext)] {
                let vars = Vars {
                    bucket: rules.input_bucket,
                    key: &sample,
                    etag: Some("\"5d41402abc4b2a76b9719d911017c592\""),
                    last_modified: Some(1_717_245_296),
                    task_time: 1_717_245_296,
                    index: 1,
                    autoext,
                    jobid: "sample-job",
                    tags: rules.tags,
                    outputs: &sample_outputs,
                };
                // A sample that fails to render cannot overwrite anything.
                if self.render(&vars).is_ok_and(|key| key == sample) {
                    return Err(TemplateError::OverwritesSource { template: template(), key: sample.clone() });
                }
            }
        }

        // Rule 6: no recursion. The rendered keys are `head` followed by
        // anything (rule 2 guarantees a variable follows the head).
        let head = self.fixed_head();
        let prefix = rules.input_prefix;
        // With a fixed folder in its head, outputs all land under the head,
        // and a listing never selects a key under it (`select::output_head`):
        // safe, unless the selection itself lies inside it. Otherwise outputs
        // may land in the selection unless the head is apart from the input
        // prefix or the file-name filter can never keep an output.
        let overlaps = if rules.fixed_selection {
            head.is_empty()
        } else if head.contains('/') {
            prefix.starts_with(head)
        } else {
            (head.starts_with(prefix) || prefix.starts_with(head)) && !self.outputs_escape_suffixes(rules)
        };
        if overlaps {
            return Err(TemplateError::Recursion {
                template: template(),
                bucket: rules.input_bucket.to_string(),
                input_prefix: prefix.to_string(),
                head: head.to_string(),
            });
        }
        Ok(())
    }

    /// Renders the key of one output, and checks it against the key rules.
    /// An error fails the task; nothing should be written.
    pub fn render(&self, vars: &Vars) -> Result<String, TemplateError> {
        let (dirname, basename, barename, ext) = split_key(vars.key);
        let object_time = Civil::from_unix(vars.last_modified.unwrap_or(vars.task_time));
        let task_time = Civil::from_unix(vars.task_time);

        let mut out = String::with_capacity(self.source.len() + vars.key.len());
        // An empty `{dirname}` swallows the literal `/` right after it.
        let mut swallow_slash = false;
        // Whether `out` ends with a literal `.` of the template (that an empty
        // `{ext}` right after it swallows).
        let mut literal_dot = false;
        for segment in &self.segments {
            let var = match segment {
                Segment::Literal(text) => {
                    let text = if swallow_slash { text.strip_prefix('/').unwrap_or(text) } else { text };
                    out.push_str(text);
                    swallow_slash = false;
                    literal_dot = text.ends_with('.');
                    continue;
                }
                Segment::Var(var) => var,
            };
            let start = out.len();
            match var {
                Var::Bucket => out.push_str(vars.bucket),
                Var::Key => out.push_str(vars.key),
                Var::Dirname => out.push_str(dirname),
                Var::Basename => out.push_str(basename),
                Var::Barename => out.push_str(barename),
                Var::Ext => out.push_str(ext),
                Var::Autoext => match vars.autoext {
                    None => out.push_str(ext),
                    Some(declared) => {
                        let declared = declared.strip_prefix('.').unwrap_or(declared);
                        if !declared.is_empty() && !is_extension(declared) {
                            return Err(TemplateError::BadExtension {
                                template: self.source.clone(),
                                source_key: vars.key.to_string(),
                                ext: declared.to_string(),
                            });
                        }
                        out.push_str(declared);
                    }
                },
                Var::Time(field) => object_time.write(*field, &mut out),
                Var::TaskTime(field) => task_time.write(*field, &mut out),
                Var::Index => out.push_str(&vars.index.to_string()),
                Var::Jobid => out.push_str(vars.jobid),
                Var::Etag => {
                    let etag = vars.etag.map(strip_etag).unwrap_or("");
                    if etag.is_empty() {
                        return Err(TemplateError::NoEtag {
                            template: self.source.clone(),
                            source_key: vars.key.to_string(),
                        });
                    }
                    out.push_str(etag);
                }
                Var::Output(name) => match vars.outputs.iter().find(|(n, _)| n == name) {
                    Some((_, value)) => {
                        check_variable_value(value).map_err(|rule| TemplateError::BadVariableValue {
                            template: self.source.clone(),
                            name: name.clone(),
                            value: value.clone(),
                            rule,
                        })?;
                        out.push_str(value);
                    }
                    None => {
                        return Err(TemplateError::MissingVariable {
                            template: self.source.clone(),
                            name: name.clone(),
                            source_key: vars.key.to_string(),
                            index: vars.index,
                        });
                    }
                },
                Var::Tag(name) => match vars.tags.get(name) {
                    Some(value) => out.push_str(value),
                    // `check_rules` refuses this at job creation.
                    None => {
                        return Err(TemplateError::UnknownTag {
                            template: self.source.clone(),
                            name: name.clone(),
                            known: vars.tags.keys().cloned().collect(),
                        });
                    }
                },
            }
            let empty = out.len() == start;
            if empty && literal_dot && var.swallows_dot() {
                out.pop();
            }
            swallow_slash = empty && *var == Var::Dirname;
            literal_dot = false;
        }

        match check_key(&out) {
            Ok(()) => Ok(out),
            Err(rule) => Err(TemplateError::InvalidKey {
                template: self.source.clone(),
                source_key: vars.key.to_string(),
                key: out,
                rule,
            }),
        }
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

    /// The endings every rendered file name has, when they are known: the
    /// literal text after the last variable, or, for a template ending in
    /// `.{autoext}`, that text followed by each extension the plugin declares.
    fn name_endings(&self, output_exts: &[String]) -> Option<Vec<String>> {
        match self.segments.last()? {
            Segment::Literal(tail) => Some(vec![tail.rsplit('/').next().unwrap_or(tail).to_string()]),
            Segment::Var(Var::Autoext) if !output_exts.is_empty() => {
                let before = match self.segments.iter().rev().nth(1) {
                    Some(Segment::Literal(text)) if text.ends_with('.') => text.rsplit('/').next().unwrap_or(text),
                    _ => return None,
                };
                Some(output_exts.iter().map(|e| format!("{before}{}", e.trim_start_matches('.'))).collect())
            }
            _ => None,
        }
    }

    /// Whether no output can pass the selection's suffix filter. A name ending
    /// in `E` can end in suffix `s` when `E` ends in `s`, or when `s` ends in
    /// `E` (the variables before `E` may supply the rest of `s`).
    fn outputs_escape_suffixes(&self, rules: &RuleContext) -> bool {
        if rules.name_suffixes.is_empty() || rules.fixed_selection {
            return false;
        }
        let Some(endings) = self.name_endings(rules.output_exts) else { return false };
        endings.iter().all(|e| {
            !e.is_empty() && rules.name_suffixes.iter().all(|s| !e.ends_with(s.as_str()) && !s.ends_with(e.as_str()))
        })
    }

    /// Whether a variable follows the template's last literal `/`.
    fn last_path_segment_has_var(&self) -> bool {
        for segment in self.segments.iter().rev() {
            match segment {
                Segment::Var(_) => return true,
                Segment::Literal(text) if text.contains('/') => return false,
                Segment::Literal(_) => {}
            }
        }
        false
    }

    /// The key rules that the template's literal text breaks whatever the
    /// variables hold (the trailing `/` is rule 1's).
    fn check_literals(&self) -> Result<(), KeyRule> {
        if let Some(Segment::Literal(text)) = self.segments.first()
            && text.starts_with('/')
        {
            return Err(KeyRule::LeadingSlash);
        }
        let mut literal_len = 0;
        for segment in &self.segments {
            let Segment::Literal(text) = segment else { continue };
            if text.contains("//") {
                return Err(KeyRule::EmptySegment);
            }
            if let Some(ch) = text.chars().find(|c| c.is_control()) {
                // Report its offset in the template as written.
                let at = self.source.find(ch).unwrap_or(0);
                return Err(KeyRule::ControlChar { ch, at });
            }
            literal_len += text.len();
        }
        // A path segment made of literal text only, and equal to `.` or `..`.
        let mut whole = String::new();
        let mut all_literal = true;
        for segment in &self.segments {
            match segment {
                Segment::Var(_) => all_literal = false,
                Segment::Literal(text) => {
                    for (n, piece) in text.split('/').enumerate() {
                        if n > 0 {
                            if all_literal && (whole == "." || whole == "..") {
                                return Err(KeyRule::DotSegment(whole));
                            }
                            whole.clear();
                            all_literal = true;
                        }
                        whole.push_str(piece);
                    }
                }
            }
        }
        if all_literal && (whole == "." || whole == "..") {
            return Err(KeyRule::DotSegment(whole));
        }
        // Each `{dirname}`/`{ext}`/`{autoext}` may swallow one literal byte.
        let swallowers = self.vars().filter(|v| **v == Var::Dirname || v.swallows_dot()).count();
        let shortest = literal_len.saturating_sub(swallowers);
        if shortest > MAX_KEY_LEN {
            return Err(KeyRule::TooLong { len: shortest });
        }
        Ok(())
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

/// Checks a key against the key rules (see the module docs). Used on every
/// rendered key; public so that other code checking a key applies the very
/// same rules.
/// A value a plugin set for an output variable: one key segment, neither
/// empty nor `.` or `..`, without `/` or control characters.
pub fn check_variable_value(value: &str) -> Result<(), KeyRule> {
    if value.is_empty() {
        return Err(KeyRule::Empty);
    }
    if value.contains('/') {
        return Err(KeyRule::Slash);
    }
    if value == "." || value == ".." {
        return Err(KeyRule::DotSegment(value.to_string()));
    }
    if let Some((at, ch)) = value.char_indices().find(|(_, c)| c.is_control()) {
        return Err(KeyRule::ControlChar { ch, at });
    }
    Ok(())
}

pub fn check_key(key: &str) -> Result<(), KeyRule> {
    if key.is_empty() {
        return Err(KeyRule::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyRule::TooLong { len: key.len() });
    }
    if let Some((at, ch)) = key.char_indices().find(|(_, c)| c.is_control()) {
        return Err(KeyRule::ControlChar { ch, at });
    }
    if key.starts_with('/') {
        return Err(KeyRule::LeadingSlash);
    }
    if key.ends_with('/') {
        return Err(KeyRule::TrailingSlash);
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(KeyRule::EmptySegment),
            "." | ".." => return Err(KeyRule::DotSegment(segment.to_string())),
            _ => {}
        }
    }
    Ok(())
}

/// Splits a key into (dirname, basename, barename, ext). See the module docs
/// for what counts as an extension.
fn split_key(key: &str) -> (&str, &str, &str, &str) {
    let (dirname, basename) = match key.rfind('/') {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => ("", key),
    };
    let (barename, ext) = match basename.rfind('.') {
        Some(i) if i > 0 && i + 1 < basename.len() => (&basename[..i], &basename[i + 1..]),
        _ => (basename, ""),
    };
    (dirname, basename, barename, ext)
}

/// Source keys under the input prefix to try rule 5 on: in a folder and at the
/// top, with one, two and no extensions.
fn sample_keys(prefix: &str) -> Vec<String> {
    let join = if prefix.is_empty() || prefix.ends_with('/') { "" } else { "/" };
    ["cat.jpg", "photos/2024/cat.jpg", "a/b.tar.gz", "README"].iter().map(|s| format!("{prefix}{join}{s}")).collect()
}

/// `"abc"` and `W/"abc"` to `abc`.
fn strip_etag(etag: &str) -> &str {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag)
}

fn is_tag_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A plugin-declared extension is untrusted: it must not add a folder (`/`),
/// a `..`, or anything odd to the key.
fn is_extension(ext: &str) -> bool {
    ext.len() <= MAX_EXT_LEN
        && ext.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        })
}

fn unicode_name(ch: &char) -> String {
    format!("U+{:04X}", *ch as u32)
}

/// A long key, cut for an error message.
fn shorten(s: &str) -> Cow<'_, str> {
    const KEEP: usize = 60;
    if s.len() <= 2 * KEEP {
        return Cow::Borrowed(s);
    }
    let mut head = KEEP;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - KEEP;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    Cow::Owned(format!("{}…({} bytes)…{}", &s[..head], s.len(), &s[tail..]))
}

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    mon: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
}

impl Civil {
    /// Unix seconds to a UTC date and time (proleptic Gregorian), by chrono.
    /// A time outside chrono's range (about ±262,000 years) cannot come from a
    /// real object; it renders as the Unix epoch rather than failing the task.
    fn from_unix(secs: i64) -> Civil {
        use chrono::{Datelike, Timelike};
        let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
        Civil {
            year: i64::from(t.year()),
            mon: t.month(),
            day: t.day(),
            hour: t.hour(),
            min: t.minute(),
            sec: t.second(),
        }
    }

    fn write(&self, field: TimeField, out: &mut String) {
        use std::fmt::Write;
        let _ = match field {
            TimeField::Year => write!(out, "{:04}", self.year),
            TimeField::Mon => write!(out, "{:02}", self.mon),
            TimeField::Day => write!(out, "{:02}", self.day),
            TimeField::Hour => write!(out, "{:02}", self.hour),
            TimeField::Min => write!(out, "{:02}", self.min),
            TimeField::Sec => write!(out, "{:02}", self.sec),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-06-01T12:34:56Z (`date -u -d @1717245296`).
    const MODIFIED: i64 = 1_717_245_296;
    /// 2024-02-29T12:34:56Z.
    const TASK: i64 = 1_709_210_096;

    fn no_tags() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn tags() -> BTreeMap<String, String> {
        [("owner", "ana"), ("run-1", "r1")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn vars<'a>(key: &'a str, tags: &'a BTreeMap<String, String>) -> Vars<'a> {
        Vars {
            bucket: "media",
            key,
            etag: Some("\"d41d8cd9\""),
            last_modified: Some(MODIFIED),
            task_time: TASK,
            index: 3,
            autoext: Some("webp"),
            jobid: "job-42",
            tags,
            outputs: &[],
        }
    }

    fn render(template: &str, key: &str) -> String {
        let t = tags();
        Template::parse(template).unwrap().render(&vars(key, &t)).unwrap()
    }

    fn render_err(template: &str, v: &Vars) -> TemplateError {
        Template::parse(template).unwrap().render(v).unwrap_err()
    }

    fn ctx<'a>(
        input: &'a str,
        output: &'a str,
        prefix: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> RuleContext<'a> {
        RuleContext {
            input_bucket: input,
            output_bucket: output,
            input_prefix: prefix,
            tags,
            fixed_selection: false,
            name_suffixes: &[],
            output_exts: &[],
            output_variables: &[],
        }
    }

    #[test]
    fn output_variables_are_checked_at_creation_and_at_render() {
        let t = tags();
        let declared = ["page".to_string()];
        let rules = RuleContext { output_variables: &declared, ..ctx("docs", "pages", "", &t) };
        let template = Template::parse("{barename}-{page}.{autoext}").unwrap();
        template.check_rules(&rules).unwrap();
        // A name neither the template's nor the plugin's: refused at creation, naming both lists.
        let typo = Template::parse("{barname}-{page}.png").unwrap();
        let err = typo.check_rules(&rules).unwrap_err();
        assert_eq!(err.rule(), "undeclared-variable");
        let msg = err.to_string();
        assert!(
            msg.contains("`{barname}` is neither a template variable") && msg.contains("declares `{page}`"),
            "{msg}"
        );
        let undeclared = Template::parse("{barename}-{page}.png").unwrap();
        let none = RuleContext { output_variables: &[], ..rules };
        assert!(undeclared.check_rules(&none).unwrap_err().to_string().contains("it declares none"));
        // At render: the plugin's value, checked as one key segment.
        let set = [("page".to_string(), "3".to_string())];
        let v = Vars { outputs: &set, ..vars("reports/q1.docx", &t) };
        assert_eq!(template.render(&v).unwrap(), "q1-3.webp");
        for (bad, rule) in [("a/b", KeyRule::Slash), ("..", KeyRule::DotSegment("..".into())), ("", KeyRule::Empty)] {
            let set = [("page".to_string(), bad.to_string())];
            let err = template.render(&Vars { outputs: &set, ..vars("q1.docx", &t) }).unwrap_err();
            assert!(err.is_render_error(), "{err}");
            assert_eq!(
                err,
                TemplateError::BadVariableValue {
                    template: template.as_str().into(),
                    name: "page".into(),
                    value: bad.into(),
                    rule
                }
            );
        }
        let err = template.render(&vars("q1.docx", &t)).unwrap_err();
        assert_eq!(err.rule(), "missing-variable");
        assert!(err.to_string().contains("the plugin did not set it for output 3"), "{err}");
    }

    fn check(template: &str, prefix: &str) -> Result<(), TemplateError> {
        let t = tags();
        Template::parse(template).unwrap().check_rules(&ctx("media", "media", prefix, &t))
    }

    fn check_other_bucket(template: &str) -> Result<(), TemplateError> {
        let t = tags();
        Template::parse(template).unwrap().check_rules(&ctx("media", "out", "", &t))
    }

    // --- rendering ---

    #[test]
    fn renders_every_variable() {
        let key = "photos/2024/cat.jpg";
        assert_eq!(render("{bucket}", key), "media");
        assert_eq!(render("{key}", key), "photos/2024/cat.jpg");
        assert_eq!(render("{dirname}", key), "photos/2024");
        assert_eq!(render("{basename}", key), "cat.jpg");
        assert_eq!(render("{barename}", key), "cat");
        assert_eq!(render("{ext}", key), "jpg");
        assert_eq!(render("{autoext}", key), "webp");
        assert_eq!(render("{year}-{mon}-{day}T{hour}:{min}:{sec}", key), "2024-06-01T12:34:56");
        assert_eq!(render("{t_year}-{t_mon}-{t_day}T{t_hour}:{t_min}:{t_sec}", key), "2024-02-29T12:34:56");
        assert_eq!(render("{index}", key), "3");
        assert_eq!(render("{tags.owner}/{tags.run-1}", key), "ana/r1");
        assert_eq!(render("{jobid}", key), "job-42");
        assert_eq!(render("{etag}", key), "d41d8cd9");
        assert_eq!(
            render("out/{bucket}/{dirname}/{barename}-{index}.{autoext}", key),
            "out/media/photos/2024/cat-3.webp"
        );
    }

    #[test]
    fn file_name_parts() {
        assert_eq!(split_key("a/b/archive.tar.gz"), ("a/b", "archive.tar.gz", "archive.tar", "gz"));
        assert_eq!(split_key("cat.jpg"), ("", "cat.jpg", "cat", "jpg"));
        assert_eq!(split_key("dir/.bashrc"), ("dir", ".bashrc", ".bashrc", ""));
        assert_eq!(split_key("dir/notes."), ("dir", "notes.", "notes.", ""));
        assert_eq!(split_key("README"), ("", "README", "README", ""));
        assert_eq!(split_key("a.b/c"), ("a.b", "c", "c", ""));
    }

    #[test]
    fn object_time_falls_back_to_task_time() {
        let t = no_tags();
        let mut v = vars("cat.jpg", &t);
        v.last_modified = None;
        let key = Template::parse("{year}/{mon}/{day}/{hour}{min}{sec}-{basename}").unwrap().render(&v).unwrap();
        assert_eq!(key, "2024/02/29/123456-cat.jpg");
    }

    #[test]
    fn autoext_falls_back_to_source_ext_and_strips_a_dot() {
        let t = no_tags();
        let tpl = Template::parse("out/{barename}.{autoext}").unwrap();
        let mut v = vars("a/cat.jpg", &t);
        v.autoext = None;
        assert_eq!(tpl.render(&v).unwrap(), "out/cat.jpg");
        v.autoext = Some(".png");
        assert_eq!(tpl.render(&v).unwrap(), "out/cat.png");
        v.autoext = Some("tar.gz");
        assert_eq!(tpl.render(&v).unwrap(), "out/cat.tar.gz");
    }

    #[test]
    fn autoext_from_the_plugin_is_checked() {
        let t = no_tags();
        let long = "x".repeat(MAX_EXT_LEN + 1);
        for bad in ["png/../../x", "a/b", "..", "a..b", "x y", "a.", long.as_str()] {
            let mut v = vars("cat.jpg", &t);
            v.autoext = Some(bad);
            let err = render_err("out/{barename}.{autoext}", &v);
            assert_eq!(err.rule(), "bad-extension", "{bad}");
            assert!(err.to_string().contains("the plugin declared the extension"), "{err}");
            assert!(err.is_render_error());
        }
    }

    #[test]
    fn etag_quotes_and_weak_prefix_are_stripped() {
        let t = no_tags();
        let tpl = Template::parse("e/{etag}").unwrap();
        let mut v = vars("cat.jpg", &t);
        for (given, want) in [("\"abc\"", "e/abc"), ("W/\"abc\"", "e/abc"), ("abc-3", "e/abc-3")] {
            v.etag = Some(given);
            assert_eq!(tpl.render(&v).unwrap(), want);
        }
    }

    #[test]
    fn missing_etag_is_a_render_error() {
        let t = no_tags();
        for etag in [None, Some("\"\""), Some("")] {
            let mut v = vars("cat.jpg", &t);
            v.etag = etag;
            let err = render_err("e/{etag}", &v);
            assert_eq!(err.rule(), "no-etag");
            assert_eq!(err.to_string(), "template `e/{etag}` uses `{etag}`, but the source `cat.jpg` has no ETag");
        }
    }

    #[test]
    fn escapes_are_literal_braces() {
        assert_eq!(render("a{{b}}/{{{basename}}}", "x/cat.jpg"), "a{b}/{cat.jpg}");
        let t = Template::parse("{{key}}/{key}").unwrap();
        assert!(t.uses("key"));
        assert_eq!(t.literal_head(), "{key}/");
        assert_eq!(render("{{key}}/{key}", "cat.jpg"), "{key}/cat.jpg");
    }

    #[test]
    fn literal_head_and_uses() {
        let t = Template::parse("thumbs/{{x}}/{dirname}/{tags.owner}.{ext}").unwrap();
        assert_eq!(t.literal_head(), "thumbs/{x}/");
        assert_eq!(t.as_str(), "thumbs/{{x}}/{dirname}/{tags.owner}.{ext}");
        assert!(t.uses("dirname") && t.uses("{ext}") && t.uses("tags.owner") && t.uses("tags"));
        assert!(!t.uses("key") && !t.uses("tags.run") && !t.uses("x"));
        assert_eq!(t.tag_names().collect::<Vec<_>>(), ["owner"]);
        assert_eq!(Template::parse("{key}").unwrap().literal_head(), "");
    }

    // --- swallowing ---

    #[test]
    fn empty_dirname_swallows_the_following_slash() {
        let tpl = "thumbs/{dirname}/{barename}.jpg";
        assert_eq!(render(tpl, "cat.png"), "thumbs/cat.jpg");
        assert_eq!(render(tpl, "a/b/cat.png"), "thumbs/a/b/cat.jpg");
        assert_eq!(render("{dirname}/{basename}.txt", "cat.png"), "cat.png.txt");
        // Only a `/` right after it, and only one.
        assert_eq!(render("t/{dirname}-{basename}", "cat.png"), "t/-cat.png");
        let t = tags();
        let err = render_err("t/{dirname}//{basename}", &vars("cat.png", &t));
        assert_eq!(err.rule(), "invalid-key");
    }

    #[test]
    fn empty_ext_swallows_the_preceding_dot() {
        assert_eq!(render("t/{barename}.{ext}", "a/README"), "t/README");
        assert_eq!(render("t/{barename}.{ext}", "a/cat.jpg"), "t/cat.jpg");
        assert_eq!(render("t/{barename}.small.{ext}", "a/.bashrc"), "t/.bashrc.small");
        // Not a dot that a variable wrote.
        assert_eq!(render("t/{basename}{ext}", "a/notes."), "t/notes.");
        let t = no_tags();
        let mut v = vars("a/cat.jpg", &t);
        v.autoext = Some("");
        let tpl = Template::parse("t/{barename}.{autoext}").unwrap();
        assert_eq!(tpl.render(&v).unwrap(), "t/cat");
        v.autoext = None;
        v.key = "a/README";
        assert_eq!(tpl.render(&v).unwrap(), "t/README");
    }

    #[test]
    fn swallowing_both_at_once() {
        assert_eq!(render("{dirname}/{barename}.{ext}.gz", "README"), "README.gz");
    }

    // --- key rules at render ---

    #[test]
    fn rendered_keys_are_checked() {
        let t = no_tags();
        let cases = [
            ("t/{key}", "a/../b", "a `..` segment"),
            ("t/{key}", "a/./b", "a `.` segment"),
            ("t/{key}", "a//b", "empty segment"),
            ("t/{key}", "a/b/", "ends with `/`"),
            ("{key}-x", "/a", "starts with `/`"),
            ("t/{key}", "a\u{7}b", "control character U+0007 at byte 3"),
            ("{dirname}", "cat.jpg", "it is empty"),
            ("{tags.none}/{key}", "cat", "unknown tag"),
        ];
        for (tpl, key, want) in cases {
            let err = render_err(tpl, &vars(key, &t));
            assert!(err.to_string().contains(want), "{tpl} {key}: {err}");
        }
        let err = render_err("t/{key}", &vars("a/../b", &t));
        assert_eq!(
            err.to_string(),
            "template `t/{key}` rendered `t/a/../b` for source `a/../b`: \
             it has a `..` segment (key rule: no `.` or `..` segment)"
        );
        assert!(err.is_render_error());
    }

    #[test]
    fn key_length_limit() {
        let t = no_tags();
        let tpl = Template::parse("t/{key}").unwrap();
        let ok = "k".repeat(MAX_KEY_LEN - 2);
        assert_eq!(tpl.render(&vars(&ok, &t)).unwrap().len(), MAX_KEY_LEN);
        let long = "k".repeat(MAX_KEY_LEN - 1);
        let err = tpl.render(&vars(&long, &t)).unwrap_err();
        let TemplateError::InvalidKey { rule, key, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*rule, KeyRule::TooLong { len: MAX_KEY_LEN + 1 });
        assert_eq!(key.len(), MAX_KEY_LEN + 1);
        let msg = err.to_string();
        assert!(msg.contains("is 1025 bytes long (key rule: at most 1024 bytes)"), "{msg}");
        assert!(msg.len() < 600, "the message cuts the key: {msg}");
    }

    #[test]
    fn check_key_rules() {
        assert_eq!(check_key("a/b.c"), Ok(()));
        assert_eq!(check_key("..a/b..c/.d"), Ok(()));
        assert_eq!(check_key(""), Err(KeyRule::Empty));
        assert_eq!(check_key("/a"), Err(KeyRule::LeadingSlash));
        assert_eq!(check_key("a/"), Err(KeyRule::TrailingSlash));
        assert_eq!(check_key("a//b"), Err(KeyRule::EmptySegment));
        assert_eq!(check_key("."), Err(KeyRule::DotSegment(".".into())));
        assert_eq!(check_key("a/.."), Err(KeyRule::DotSegment("..".into())));
        assert_eq!(check_key("a\nb"), Err(KeyRule::ControlChar { ch: '\n', at: 1 }));
        assert_eq!(check_key("a\u{85}"), Err(KeyRule::ControlChar { ch: '\u{85}', at: 1 }));
        assert_eq!(check_key(&"x".repeat(1025)), Err(KeyRule::TooLong { len: 1025 }));
    }

    // --- parse errors ---

    #[test]
    fn unknown_variable() {
        // A lowercase name may be a plugin's output variable (`check_rules` asks
        // the plugin); any other unknown name is refused as it is parsed.
        let err = Template::parse("thumbs/{Nope}.jpg").unwrap_err();
        assert_eq!(
            err.to_string(),
            "template `thumbs/{Nope}.jpg`: unknown variable `{Nope}` at byte 7; known variables: bucket, key, \
             dirname, basename, barename, ext, autoext, year, mon, day, hour, min, sec, t_year, t_mon, t_day, \
             t_hour, t_min, t_sec, index, jobid, etag, tags.NAME"
        );
        assert_eq!(err.rule(), "unknown-variable");
        // Names are exact: no spaces, no case folding.
        assert_eq!(Template::parse("a/{ key }").unwrap_err().rule(), "unknown-variable");
        assert_eq!(Template::parse("a/{Key}").unwrap_err().rule(), "unknown-variable");
        assert_eq!(Template::parse("a/{tags}").unwrap_err().rule(), "unknown-variable");
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("", "empty", "the output template is empty"),
            (
                "a/{key",
                "unclosed-brace",
                "template `a/{key`: the `{` at byte 2 is not closed; write `{{` for a literal `{`",
            ),
            ("a/{x{key}", "unclosed-brace", "the `{` at byte 2 is not closed"),
            (
                "a/key}",
                "unmatched-close",
                "template `a/key}`: the `}` at byte 5 closes nothing; write `}}` for a literal `}`",
            ),
            ("a/{key}}x", "unmatched-close", "the `}` at byte 7 closes nothing"),
            ("a/{}{key}", "empty-variable", "template `a/{}{key}`: `{}` at byte 2 names no variable"),
            ("a/{tags.}", "bad-tag-name", "bad tag name in `{tags.}` at byte 2"),
            ("a/{tags.a b}", "bad-tag-name", "bad tag name in `{tags.a b}`"),
            ("a/{tags.a/b}", "bad-tag-name", "bad tag name"),
        ];
        for (tpl, rule, msg) in cases {
            let err = Template::parse(tpl).unwrap_err();
            assert_eq!(err.rule(), rule, "{tpl}: {err}");
            assert!(err.to_string().contains(msg), "{tpl}: {err}");
            assert!(!err.is_render_error());
        }
    }

    #[test]
    fn parse_keeps_non_ascii_text() {
        assert_eq!(render("фото/{barename}-é.{ext}", "a/猫.jpg"), "фото/猫-é.jpg");
        let err = Template::parse("é/{Nope}").unwrap_err();
        assert!(err.to_string().contains("at byte 3"), "{err}");
    }

    // --- path rules ---

    #[test]
    fn good_templates_pass() {
        check("thumbs/{dirname}/{barename}.{autoext}", "photos/").unwrap();
        check("thumbs/{key}", "photos/").unwrap();
        check("photos-thumbs/{key}", "photos/").unwrap();
        check("out/{tags.owner}/{t_year}/{barename}-{index}.{autoext}", "in/").unwrap();
        check_other_bucket("{key}").unwrap();
        check_other_bucket("{dirname}/{barename}.{autoext}").unwrap();
        check_other_bucket("x").unwrap_err();
    }

    #[test]
    fn rule_unknown_tag() {
        let err = check("out/{tags.nope}/{key}", "in/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "template `out/{tags.nope}/{key}`: unknown tag `{tags.nope}`; the job's tags are: owner, run-1"
        );
        let none = no_tags();
        let err = Template::parse("out/{tags.x}/{key}").unwrap().check_rules(&ctx("a", "b", "", &none)).unwrap_err();
        assert!(err.to_string().ends_with("the job's tags are: (none)"), "{err}");
    }

    #[test]
    fn rule_no_trailing_slash() {
        let err = check_other_bucket("out/{dirname}/").unwrap_err();
        assert_eq!(err.rule(), "trailing-slash");
        assert_eq!(
            err.to_string(),
            "template `out/{dirname}/`: ends with `/` (path rule: the output path names an object, so it does not end with `/`)"
        );
    }

    #[test]
    fn rule_file_name_has_a_variable() {
        for (tpl, file_name) in [("out/{key}/thumb.jpg", "thumb.jpg"), ("static", "static"), ("{{key}}/{{x}}", "{{x}}")]
        {
            let err = check_other_bucket(tpl).unwrap_err();
            assert_eq!(err.rule(), "file-name-without-variable", "{tpl}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("its file name `{file_name}` has no variable")), "{msg}");
            assert!(msg.contains("path rule: the file name contains at least one variable"), "{msg}");
        }
        check_other_bucket("{key}").unwrap();
        check_other_bucket("out/thumb-{index}.jpg").unwrap();
    }

    #[test]
    fn rule_literal_text_keeps_the_key_rules() {
        let long = format!("{}/{{key}}", "x".repeat(MAX_KEY_LEN + 1));
        let cases: [(&str, KeyRule); 7] = [
            ("/out/{key}", KeyRule::LeadingSlash),
            ("out//{key}", KeyRule::EmptySegment),
            ("{dirname}//{key}", KeyRule::EmptySegment),
            ("out/../{key}", KeyRule::DotSegment("..".into())),
            ("../{key}", KeyRule::DotSegment("..".into())),
            ("out/./{key}", KeyRule::DotSegment(".".into())),
            ("out/\t/{key}", KeyRule::ControlChar { ch: '\t', at: 4 }),
        ];
        for (tpl, want) in cases {
            let err = check_other_bucket(tpl).unwrap_err();
            assert_eq!(err, TemplateError::InvalidLiteral { template: tpl.into(), rule: want }, "{tpl}");
            assert!(
                err.to_string()
                    .starts_with(&format!("template `{tpl}`: every key it renders would break a key rule: it "))
            );
        }
        assert_eq!(check_other_bucket(&long).unwrap_err().rule(), "invalid-literal");
        // Dots next to a variable are fine: `..{key}` is not a `..` segment.
        check_other_bucket("out/..{key}").unwrap();
        check_other_bucket("out/{dirname}/./x{key}").unwrap_err();
        check_other_bucket("out/.{ext}/{key}").unwrap();
    }

    #[test]
    fn rule_no_overwriting_the_source() {
        for tpl in ["{key}", "{dirname}/{basename}", "{dirname}/{barename}.{ext}", "{dirname}/{barename}.{autoext}"] {
            let err = check(tpl, "photos/").unwrap_err();
            assert_eq!(err.rule(), "overwrites-source", "{tpl}");
            assert_eq!(
                err.to_string(),
                format!(
                    "template `{tpl}`: renders `photos/cat.jpg` to itself, so it would overwrite its source \
                     (path rule: in the same bucket, a template cannot render a source key to itself)"
                )
            );
        }
        // A prefix without a final `/` still gives keys under it.
        let err = check("{key}", "photos").unwrap_err();
        assert!(err.to_string().contains("renders `photos/cat.jpg` to itself"), "{err}");
        // Whole bucket.
        let err = check("{dirname}/{barename}.{autoext}", "").unwrap_err();
        assert!(err.to_string().contains("renders `cat.jpg` to itself"), "{err}");
        // Another bucket is fine.
        check_other_bucket("{key}").unwrap();
    }

    #[test]
    fn rule_no_recursion() {
        // The input prefix inside the output folder: every source is an output's place.
        let err = check("photos/{basename}-small.{ext}", "photos/2024/").unwrap_err();
        assert_eq!(err.rule(), "recursion");
        assert_eq!(
            err.to_string(),
            "template `photos/{basename}-small.{ext}`: its outputs start with `photos/`, which overlaps the input \
             prefix `photos/2024/`, so outputs could be selected as inputs of bucket `media` and processed again \
             (path rule: in the same bucket, outputs stay out of the selection). Start the template with a folder \
             outside `photos/2024/`, write to another bucket, or select with a suffix filter (`--suffix`) that the \
             outputs' names cannot end with (a template ending in a fixed extension, or in `.{autoext}` with a \
             plugin that declares what it writes)"
        );
        // A head without a folder: `photos` also lists `photos-thumbs/`.
        assert_eq!(check("photos-{key}", "photos").unwrap_err().rule(), "recursion");
        // The input prefix inside the head's reach: `{key}.thumb.jpg` writes
        // `photos/cat.jpg.thumb.jpg`; the message no longer quotes an empty head.
        let err = check("{key}.thumb.jpg", "photos/").unwrap_err();
        assert_eq!(err.rule(), "recursion");
        assert!(
            err.to_string().contains("it starts with a variable, so its outputs can land anywhere, `photos/` included"),
            "{err}"
        );
        // And this one can overwrite its source, when the task runs in 2024.
        let err = check("photos/{t_year}/{basename}", "photos/2024/").unwrap_err();
        assert!(err.to_string().contains("renders `photos/2024/cat.jpg` to itself"), "{err}");
        // An empty `{ext}` swallowing the head's final dot is accounted for.
        assert_eq!(check("photos.{ext}/{key}", "photos/").unwrap_err().rule(), "recursion");
        // An output folder beside or inside the selection: the listing skips it.
        check("thumbs/{key}", "photos/").unwrap();
        check("thumbs/{key}", "").unwrap();
        check("photos/thumbs/{basename}", "photos/").unwrap();
        // Conservative: this one could not recurse, but the selection lies inside its head.
        assert_eq!(check("photos/{t_year}-thumbs/{basename}", "photos/2024/").unwrap_err().rule(), "recursion");
        check_other_bucket("thumbs/{key}").unwrap();
    }

    #[test]
    fn a_suffix_filter_that_no_output_can_pass_proves_there_is_no_recursion() {
        let t = tags();
        let with = |template: &str, prefix: &str, suffixes: &[&str], exts: &[&str]| {
            let suffixes: Vec<String> = suffixes.iter().map(|s| s.to_string()).collect();
            let exts: Vec<String> = exts.iter().map(|s| s.to_string()).collect();
            let mut c = ctx("media", "media", prefix, &t);
            c.name_suffixes = &suffixes;
            c.output_exts = &exts;
            Template::parse(template).unwrap().check_rules(&c).map(|_| ()).map_err(|e| e.rule())
        };
        // A fixed extension that no suffix matches.
        assert_eq!(with("{dirname}/{barename}-small.webp", "trip-1/", &[".jpg"], &[]), Ok(()));
        // `.{autoext}` with the plugin's declared extensions.
        assert_eq!(
            with("{dirname}/{barename}-small.{autoext}", "trip-1/", &[".jpg", ".png"], &["webp", "avif"]),
            Ok(())
        );
        // The plugin may write `jpg`: an output could be selected again.
        assert_eq!(
            with("{dirname}/{barename}-small.{autoext}", "trip-1/", &[".jpg"], &["jpg", "webp"]),
            Err("recursion")
        );
        // Nothing declared, or no filter: nothing is proved.
        assert_eq!(with("{dirname}/{barename}-small.{autoext}", "trip-1/", &[".jpg"], &[]), Err("recursion"));
        assert_eq!(with("{dirname}/{barename}-small.webp", "trip-1/", &[], &[]), Err("recursion"));
        // A suffix longer than the ending may still end an output (`x-small.webp` ends in `small.webp`).
        assert_eq!(with("{dirname}/{barename}-small.webp", "trip-1/", &["small.webp"], &[]), Err("recursion"));
        assert_eq!(with("{dirname}/{barename}.webp", "trip-1/", &["-x.webp"], &[]), Err("recursion"));
    }

    // --- serde and traits ---

    #[test]
    fn serde_round_trip_parses() {
        let t: Template = serde_json::from_str("\"thumbs/{key}\"").unwrap();
        assert_eq!(t.as_str(), "thumbs/{key}");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"thumbs/{key}\"");
        let err = serde_json::from_str::<Template>("\"thumbs/{Nope}\"").unwrap_err();
        assert!(err.to_string().contains("unknown variable `{Nope}`"), "{err}");
        assert_eq!("a/{key}".parse::<Template>().unwrap().to_string(), "a/{key}");
    }

    // --- dates ---

    #[test]
    fn civil_known_dates() {
        let c = |t| {
            let c = Civil::from_unix(t);
            (c.year, c.mon, c.day, c.hour, c.min, c.sec)
        };
        assert_eq!(c(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(c(-1), (1969, 12, 31, 23, 59, 59));
        assert_eq!(c(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(c(MODIFIED), (2024, 6, 1, 12, 34, 56));
        assert_eq!(c(TASK), (2024, 2, 29, 12, 34, 56));
        assert_eq!(c(253_402_300_799), (9999, 12, 31, 23, 59, 59));
        assert_eq!(c(-62_135_596_800), (1, 1, 1, 0, 0, 0));
        let mut out = String::new();
        Civil::from_unix(-62_135_596_800).write(TimeField::Year, &mut out);
        assert_eq!(out, "0001");
    }

    #[test]
    fn a_manifest_selection_only_needs_a_fixed_head_in_the_same_bucket() {
        let t = tags();
        let fixed = |template: &str| {
            let mut c = ctx("media", "media", "", &t);
            c.fixed_selection = true;
            Template::parse(template).unwrap().check_rules(&c)
        };
        assert!(fixed("thumbs/{key}").is_ok(), "the whole bucket is listed in no manifest");
        assert_eq!(fixed("{dirname}/{barename}-s.{ext}").unwrap_err().rule(), "recursion");
        assert_eq!(fixed("{key}").unwrap_err().rule(), "overwrites-source");
    }
}
