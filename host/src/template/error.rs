//! What is wrong with a template or a key, each error naming the template and where.

use super::*;

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
