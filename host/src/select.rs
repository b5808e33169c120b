//! Input selection: explicit keys, or a prefix with a filter on file names,
//! as a paginated stream of objects. The planner pages through it; memory does
//! not grow with the listing.

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::model::InputSpec;
use crate::objects::{Bucket, ObjectsError};
use crate::runtime::ObjectMeta;

/// Why a selection was refused at job creation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("input.keys cannot be combined with input.prefix, input.suffixes or input.file_prefixes")]
    KeysAndPrefix,
    #[error("input.keys[{index}] is invalid: {reason}")]
    BadKey { index: usize, reason: String },
    #[error("input.{field} has an entry containing `/`: `{value}`; filters apply to file names")]
    SlashInFilter { field: &'static str, value: String },
}

/// Check a selection before the job is stored.
pub fn check(input: &InputSpec) -> Result<(), SelectionError> {
    if !input.keys.is_empty() {
        if !input.prefix.is_empty() || !input.suffixes.is_empty() || !input.file_prefixes.is_empty() {
            return Err(SelectionError::KeysAndPrefix);
        }
        for (index, key) in input.keys.iter().enumerate() {
            let reason = if key.is_empty() {
                Some("empty key".to_string())
            } else if key.starts_with('/') || key.ends_with('/') {
                Some(format!("`{key}` starts or ends with `/`"))
            } else if key.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                Some(format!("`{key}` has an empty, `.` or `..` segment"))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SelectionError::BadKey { index, reason });
            }
        }
    }
    for (field, list) in [("suffixes", &input.suffixes), ("file_prefixes", &input.file_prefixes)] {
        if let Some(v) = list.iter().find(|v| v.contains('/')) {
            return Err(SelectionError::SlashInFilter { field, value: v.clone() });
        }
    }
    Ok(())
}

/// Whether a listed key passes the file-name filter.
pub fn matches(input: &InputSpec, key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    (input.suffixes.is_empty() || input.suffixes.iter().any(|s| name.ends_with(s.as_str())))
        && (input.file_prefixes.is_empty() || input.file_prefixes.iter().any(|p| name.starts_with(p.as_str())))
}

/// One page of the selection: the objects that passed the filter, and the
/// last key listed (the cursor to resume after), which may have been filtered out.
pub struct Page {
    pub objects: Vec<ObjectMeta>,
    pub cursor: Option<String>,
    pub done: bool,
}

/// Pages through a prefix listing, `page_size` listed keys at a time.
pub struct Pager {
    stream: BoxStream<'static, Result<ObjectMeta, ObjectsError>>,
    input: InputSpec,
    page_size: usize,
}

impl Pager {
    pub fn new(bucket: &Bucket, input: &InputSpec, after: Option<&str>, page_size: usize) -> Pager {
        Pager { stream: bucket.list_from(&input.prefix, after), input: input.clone(), page_size }
    }

    pub async fn next_page(&mut self) -> Result<Page, ObjectsError> {
        let mut page = Page { objects: Vec::new(), cursor: None, done: false };
        for _ in 0..self.page_size {
            match self.stream.next().await {
                None => {
                    page.done = true;
                    break;
                }
                Some(item) => {
                    let object = item?;
                    page.cursor = Some(object.key.clone());
                    if matches(&self.input, &object.key) {
                        page.objects.push(object);
                    }
                }
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prefix: &str, suffixes: &[&str], file_prefixes: &[&str]) -> InputSpec {
        InputSpec {
            bucket: "b".into(),
            prefix: prefix.into(),
            suffixes: suffixes.iter().map(|s| s.to_string()).collect(),
            file_prefixes: file_prefixes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn filters_on_the_file_name() {
        let s = spec("", &[".jpg", ".png"], &[]);
        assert!(matches(&s, "a/b/cat.jpg"));
        assert!(!matches(&s, "a/b.jpg/readme.txt"));
        let s = spec("", &[], &["IMG_"]);
        assert!(matches(&s, "x/IMG_1.jpg") && !matches(&s, "IMG_dir/x.jpg"));
        let s = spec("", &[".jpg"], &["IMG_"]);
        assert!(matches(&s, "IMG_1.jpg") && !matches(&s, "IMG_1.png") && !matches(&s, "DSC.jpg"));
        assert!(matches(&spec("", &[], &[]), "anything"));
    }

    #[test]
    fn accepts_comma_separated_filters() {
        let s: InputSpec = serde_json::from_str(r#"{"bucket":"b","suffixes":".jpg, .png,","file_prefixes":["a"]}"#).unwrap();
        assert_eq!(s.suffixes, vec![".jpg", ".png"]);
        assert_eq!(s.file_prefixes, vec!["a"]);
    }

    #[test]
    fn refuses_bad_selections_naming_the_field() {
        let mut s = spec("p/", &[], &[]);
        s.keys = vec!["a".into()];
        assert_eq!(check(&s), Err(SelectionError::KeysAndPrefix));
        let s = InputSpec { bucket: "b".into(), keys: vec!["ok".into(), "a/../b".into()], ..Default::default() };
        assert!(matches!(check(&s), Err(SelectionError::BadKey { index: 1, .. })));
        let e = check(&spec("", &["a/b"], &[])).unwrap_err();
        assert!(e.to_string().contains("input.suffixes"));
    }
}
