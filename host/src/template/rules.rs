//! The path rules: what a template must satisfy for a job (checked when the
//! job is created), and what every rendered key must satisfy.

use super::*;

/// Where a template's outputs can land, for [`TemplateError::Recursion`].
pub(super) fn recursion_where(head: &str, input_prefix: &str) -> String {
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

impl Template {
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

/// Checks a key against the key rules (see the module docs). Used on every
/// rendered key; public so that other code checking a key applies the very
/// same rules.
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
pub(super) fn split_key(key: &str) -> (&str, &str, &str, &str) {
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
pub(super) fn sample_keys(prefix: &str) -> Vec<String> {
    let join = if prefix.is_empty() || prefix.ends_with('/') { "" } else { "/" };
    ["cat.jpg", "photos/2024/cat.jpg", "a/b.tar.gz", "README"].iter().map(|s| format!("{prefix}{join}{s}")).collect()
}

/// A plugin-declared extension is untrusted: it must not add a folder (`/`),
/// a `..`, or anything odd to the key.
pub(super) fn is_extension(ext: &str) -> bool {
    ext.len() <= MAX_EXT_LEN
        && ext.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        })
}

pub(super) fn unicode_name(ch: &char) -> String {
    format!("U+{:04X}", *ch as u32)
}

/// A long key, cut for an error message.
pub(super) fn shorten(s: &str) -> Cow<'_, str> {
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
