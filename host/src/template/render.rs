//! Rendering a template for one output of one source object.

use super::*;

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

impl Template {
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
}

/// `"abc"` and `W/"abc"` to `abc`.
pub(super) fn strip_etag(etag: &str) -> &str {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag)
}

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Civil {
    pub(super) year: i64,
    pub(super) mon: u32,
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) min: u32,
    pub(super) sec: u32,
}

impl Civil {
    /// Unix seconds to a UTC date and time (proleptic Gregorian), by chrono.
    /// A time outside chrono's range (about ±262,000 years) cannot come from a
    /// real object; it renders as the Unix epoch rather than failing the task.
    pub(super) fn from_unix(secs: i64) -> Civil {
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

    pub(super) fn write(&self, field: TimeField, out: &mut String) {
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
