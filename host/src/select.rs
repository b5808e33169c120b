//! Input selection: explicit keys, a manifest object that lists keys, or a
//! prefix with filters (file names, a glob over the key, size, modification
//! time), as a paginated stream of objects. The planner pages through it;
//! memory does not grow with the listing or the manifest.

pub mod manifest;

use futures::StreamExt;
use futures::stream::BoxStream;
use globset::{GlobBuilder, GlobMatcher};

use crate::model::{InputSpec, JobSpec};
use crate::objects::{Bucket, Buckets, ObjectsError};
use crate::runtime::ObjectMeta;

pub use manifest::{ManifestError, ManifestReader};

/// Why a selection was refused at job creation. [`SelectionError::field`] names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("input.keys cannot be combined with input.prefix, input.suffixes or input.file_prefixes")]
    KeysAndPrefix,
    #[error("input.keys[{index}] is invalid: {reason}")]
    BadKey { index: usize, reason: String },
    #[error("input.{field} has an entry containing `/`: `{value}`; filters apply to file names")]
    SlashInFilter { field: &'static str, value: String },
    #[error("input.manifest cannot be combined with input.{other}: the manifest lists exactly the keys to process")]
    ManifestAnd { other: &'static str },
    #[error(
        "input.{field} cannot be combined with input.keys: object metadata is known only when each object is read; filter the list itself"
    )]
    FilterWithKeys { field: &'static str },
    #[error("input.manifest.{field}: {reason}")]
    BadManifest { field: &'static str, reason: String },
    #[error("input.glob `{glob}` is invalid: {reason}")]
    BadGlob { glob: String, reason: String },
    #[error("input.glob `{glob}` can match no key under input.prefix `{prefix}`")]
    GlobOutsidePrefix { glob: String, prefix: String },
    #[error(
        "input.prefix `{prefix}` starts with `/`, which no object key does, so it would select nothing: drop the leading `/` (`{}`)",
        prefix.trim_start_matches('/')
    )]
    LeadingSlash { prefix: String },
    #[error("input.min_size ({min}) is greater than input.max_size ({max}): no object can match")]
    SizeRange { min: u64, max: u64 },
    #[error("input.modified_after ({after}) is not before input.modified_before ({before}): no object can match")]
    TimeRange { after: String, before: String },
}

impl SelectionError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            SelectionError::KeysAndPrefix => "input",
            SelectionError::BadKey { .. } => "input.keys",
            SelectionError::SlashInFilter { field: "suffixes", .. } => "input.suffixes",
            SelectionError::SlashInFilter { .. } => "input.file_prefixes",
            SelectionError::ManifestAnd { .. } => "input.manifest",
            SelectionError::FilterWithKeys { field } => filter_field(field),
            SelectionError::BadManifest { field: "key", .. } => "input.manifest.key",
            SelectionError::BadManifest { field: "format", .. } => "input.manifest.format",
            SelectionError::BadManifest { .. } => "input.manifest",
            SelectionError::BadGlob { .. } | SelectionError::GlobOutsidePrefix { .. } => "input.glob",
            SelectionError::LeadingSlash { .. } => "input.prefix",
            SelectionError::SizeRange { .. } => "input.min_size",
            SelectionError::TimeRange { .. } => "input.modified_after",
        }
    }
}

fn filter_field(name: &str) -> &'static str {
    match name {
        "glob" => "input.glob",
        "min_size" => "input.min_size",
        "max_size" => "input.max_size",
        "modified_after" => "input.modified_after",
        _ => "input.modified_before",
    }
}

/// Why a source key is not a valid key, if it is not.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        Some("empty key".to_string())
    } else if key.starts_with('/') || key.ends_with('/') {
        Some(format!("`{key}` starts or ends with `/`"))
    } else if key.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        Some(format!("`{key}` has an empty, `.` or `..` segment"))
    } else {
        None
    }
}

/// The filters on metadata and whole keys that are set, by field name.
fn metadata_filters(input: &InputSpec) -> impl Iterator<Item = &'static str> + '_ {
    [
        ("glob", input.glob.is_some()),
        ("min_size", input.min_size.is_some()),
        ("max_size", input.max_size.is_some()),
        ("modified_after", input.modified_after.is_some()),
        ("modified_before", input.modified_before.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| name)
}

/// Check a selection before the job is stored.
pub fn check(input: &InputSpec) -> Result<(), SelectionError> {
    if let Some(m) = &input.manifest {
        let others = [
            ("keys", !input.keys.is_empty()),
            ("prefix", !input.prefix.is_empty()),
            ("suffixes", !input.suffixes.is_empty()),
            ("file_prefixes", !input.file_prefixes.is_empty()),
        ];
        if let Some(other) =
            others.into_iter().filter(|(_, set)| *set).map(|(n, _)| n).chain(metadata_filters(input)).next()
        {
            return Err(SelectionError::ManifestAnd { other });
        }
        if let Some(reason) = key_problem(&m.key) {
            return Err(SelectionError::BadManifest { field: "key", reason });
        }
        manifest::format_of(m)?;
        return Ok(());
    }
    if !input.keys.is_empty() {
        if !input.prefix.is_empty() || !input.suffixes.is_empty() || !input.file_prefixes.is_empty() {
            return Err(SelectionError::KeysAndPrefix);
        }
        if let Some(field) = metadata_filters(input).next() {
            return Err(SelectionError::FilterWithKeys { field });
        }
        for (index, key) in input.keys.iter().enumerate() {
            if let Some(reason) = key_problem(key) {
                return Err(SelectionError::BadKey { index, reason });
            }
        }
    }
    if input.prefix.starts_with('/') {
        return Err(SelectionError::LeadingSlash { prefix: input.prefix.clone() });
    }
    for (field, list) in [("suffixes", &input.suffixes), ("file_prefixes", &input.file_prefixes)] {
        if let Some(v) = list.iter().find(|v| v.contains('/')) {
            return Err(SelectionError::SlashInFilter { field, value: v.clone() });
        }
    }
    Filter::new(input)?;
    listing_prefix(input)?;
    Ok(())
}

/// The prefix a listing reads: `input.prefix`, narrowed by the fixed head of
/// `input.glob` (the text before its first wildcard) when that is longer.
pub fn listing_prefix(input: &InputSpec) -> Result<&str, SelectionError> {
    let Some(glob) = &input.glob else { return Ok(&input.prefix) };
    let head = glob_head(glob);
    if head.starts_with(input.prefix.as_str()) {
        Ok(head)
    } else if input.prefix.starts_with(head) {
        Ok(&input.prefix)
    } else {
        Err(SelectionError::GlobOutsidePrefix { glob: glob.clone(), prefix: input.prefix.clone() })
    }
}

/// The text before a glob's first special character: every match starts with it.
fn glob_head(glob: &str) -> &str {
    let end = glob.find(['*', '?', '[', '{', '\\']).unwrap_or(glob.len());
    &glob[..end]
}

/// The fixed folder a job writes its outputs under, when it writes to the
/// bucket it reads and its template starts with a folder (`thumbs/…`): no
/// key under it is selected. A head without a `/` (`t{key}`) is not taken as
/// a folder: excluding every key that starts with `t` would drop sources.
pub fn output_head(spec: &JobSpec) -> Option<String> {
    (spec.output.bucket == spec.input.bucket)
        .then(|| crate::template::Template::parse(&spec.output.template).ok().map(|t| t.fixed_head().to_string()))
        .flatten()
        .filter(|h| h.contains('/'))
}

/// Whether a listed key passes the file-name filter.
pub fn matches(input: &InputSpec, key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    (input.suffixes.is_empty() || input.suffixes.iter().any(|s| name.ends_with(s.as_str())))
        && (input.file_prefixes.is_empty() || input.file_prefixes.iter().any(|p| name.starts_with(p.as_str())))
}

/// Every filter of a listing, compiled once: file names, the glob, size and
/// modification time. All must pass. Size bounds are inclusive; times are the
/// half-open window `[modified_after, modified_before)`, in whole seconds.
#[derive(Debug, Clone)]
pub struct Filter {
    input: InputSpec,
    glob: Option<GlobMatcher>,
    /// Keys under the job's own output folder (in the same bucket) are never
    /// selected: outputs cannot become inputs (see `template`, path rule 6).
    output_head: Option<String>,
}

impl Filter {
    pub fn new(input: &InputSpec) -> Result<Filter, SelectionError> {
        let glob = match &input.glob {
            None => None,
            Some(g) => {
                let compiled = GlobBuilder::new(g)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| SelectionError::BadGlob { glob: g.clone(), reason: e.kind().to_string() })?;
                Some(compiled.compile_matcher())
            }
        };
        if let (Some(min), Some(max)) = (input.min_size, input.max_size)
            && min > max
        {
            return Err(SelectionError::SizeRange { min, max });
        }
        if let (Some(after), Some(before)) = (input.modified_after, input.modified_before)
            && after >= before
        {
            let show = |t: crate::model::Timestamp| serde_json::to_value(t).map(|v| v.to_string()).unwrap_or_default();
            return Err(SelectionError::TimeRange { after: show(after), before: show(before) });
        }
        Ok(Filter { input: input.clone(), glob, output_head: None })
    }

    /// The filter of a job: its input's, and never a key under its output
    /// folder when it writes to the bucket it reads.
    pub fn for_job(spec: &JobSpec) -> Result<Filter, SelectionError> {
        let mut filter = Filter::new(&spec.input)?;
        filter.output_head = output_head(spec);
        Ok(filter)
    }

    /// Whether a listed object passes. An unknown size or time fails a bound on it.
    pub fn matches(&self, o: &ObjectMeta) -> bool {
        self.check(o, false)
    }

    /// Whether an object passes on what is known of it (an event may carry
    /// no size or time): an unknown value passes its bounds.
    pub fn matches_known(&self, o: &ObjectMeta) -> bool {
        self.check(o, true)
    }

    fn check(&self, o: &ObjectMeta, unknown_passes: bool) -> bool {
        let i = &self.input;
        let size_ok = |bound: Option<u64>, ok: fn(u64, u64) -> bool| {
            bound.is_none_or(|b| o.size.map_or(unknown_passes, |s| ok(s, b)))
        };
        let time_ok = |bound: Option<crate::model::Timestamp>, ok: fn(i64, i64) -> bool| {
            bound.is_none_or(|b| o.last_modified.map_or(unknown_passes, |t| ok(t, b.0)))
        };
        matches(i, &o.key)
            && self.output_head.as_ref().is_none_or(|head| !o.key.starts_with(head.as_str()))
            && self.glob.as_ref().is_none_or(|g| g.is_match(&o.key))
            && size_ok(i.min_size, |s, b| s >= b)
            && size_ok(i.max_size, |s, b| s <= b)
            && time_ok(i.modified_after, |t, b| t >= b)
            && time_ok(i.modified_before, |t, b| t < b)
    }
}

/// One page of the selection: the objects that passed the filter, and the
/// cursor to resume after (for a listing, the last key listed, which may have
/// been filtered out; for a manifest, `LINES:BYTES`).
pub struct Page {
    pub objects: Vec<ObjectMeta>,
    pub cursor: Option<String>,
    pub done: bool,
}

/// Why a page of the selection could not be read. The message names the
/// bucket, or the manifest and its line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PageError {
    #[error("listing bucket `{bucket}`: {source}")]
    Listing { bucket: String, source: ObjectsError },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Invalid(#[from] SelectionError),
    #[error(transparent)]
    Bucket(#[from] ObjectsError),
}

/// Pages through a prefix listing (`page_size` listed keys at a time) or a
/// manifest (`page_size` lines at a time).
pub struct Pager {
    source: Source,
    page_size: usize,
}

// One per planner, moved never: boxing the listing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Source {
    Listing { stream: BoxStream<'static, Result<ObjectMeta, ObjectsError>>, filter: Filter, bucket: String },
    Manifest(Box<ManifestReader>),
}

impl Pager {
    /// A listing of `bucket` per `input`, resumed after the key `after`.
    pub fn new(bucket: &Bucket, input: &InputSpec, after: Option<&str>, page_size: usize) -> Result<Pager, PageError> {
        Pager::filtered(bucket, input, Filter::new(input)?, after, page_size)
    }

    fn filtered(
        bucket: &Bucket,
        input: &InputSpec,
        filter: Filter,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<Pager, PageError> {
        let prefix = listing_prefix(input)?;
        let stream = bucket.list_from(prefix, after);
        Ok(Pager { source: Source::Listing { stream, filter, bucket: bucket.name.clone() }, page_size })
    }

    /// The selection of a job that is planned by pages (a listing or a
    /// manifest, not explicit keys), resumed from `cursor`.
    pub async fn open(
        buckets: &Buckets,
        spec: &JobSpec,
        cursor: Option<&str>,
        page_size: usize,
    ) -> Result<Pager, PageError> {
        if spec.input.manifest.is_some() {
            let reader = ManifestReader::open(buckets, spec, cursor).await?;
            return Ok(Pager { source: Source::Manifest(Box::new(reader)), page_size });
        }
        let bucket = buckets.get(&spec.input.bucket)?;
        Pager::filtered(&bucket, &spec.input, Filter::for_job(spec)?, cursor, page_size)
    }

    pub async fn next_page(&mut self) -> Result<Page, PageError> {
        let (stream, filter, bucket) = match &mut self.source {
            Source::Manifest(reader) => return Ok(reader.next_page(self.page_size).await?),
            Source::Listing { stream, filter, bucket } => (stream, filter, bucket),
        };
        let mut page = Page { objects: Vec::new(), cursor: None, done: false };
        for _ in 0..self.page_size {
            match stream.next().await {
                None => {
                    page.done = true;
                    break;
                }
                Some(item) => {
                    let object = item.map_err(|source| PageError::Listing { bucket: bucket.clone(), source })?;
                    page.cursor = Some(object.key.clone());
                    if filter.matches(&object) {
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

    #[test]
    fn a_prefix_with_a_leading_slash_is_refused_saying_what_to_write() {
        let err = check(&spec("/photos/", &[], &[])).unwrap_err();
        assert_eq!(err.field(), "input.prefix");
        assert!(err.to_string().contains("drop the leading `/` (`photos/`)"), "{err}");
    }

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
        let s: InputSpec =
            serde_json::from_str(r#"{"bucket":"b","suffixes":".jpg, .png,","file_prefixes":["a"]}"#).unwrap();
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

    fn object(key: &str, size: u64, modified: i64) -> ObjectMeta {
        ObjectMeta {
            bucket: "b".into(),
            key: key.into(),
            size: Some(size),
            last_modified: Some(modified),
            ..Default::default()
        }
    }

    fn parse(json: &str) -> InputSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn glob_size_and_time_filters_combine() {
        let s = parse(
            r#"{"bucket":"b","glob":"photos/**/IMG_*.{jpg,png}","min_size":10,"max_size":100,
            "modified_after":"2024-06-01T00:00:00Z","modified_before":1719792000}"#,
        );
        let f = Filter::new(&s).unwrap();
        let june = 1_717_200_000 + 86_400;
        assert!(f.matches(&object("photos/2024/x/IMG_1.jpg", 10, june)));
        assert!(f.matches(&object("photos/IMG_2.png", 100, 1_717_200_000)), "bounds are inclusive, `after` too");
        assert!(!f.matches(&object("photos/IMG_2.gif", 50, june)));
        assert!(!f.matches(&object("photos/a/DSC_1.jpg", 50, june)));
        assert!(!f.matches(&object("other/IMG_1.jpg", 50, june)));
        assert!(!f.matches(&object("photos/IMG_1.jpg", 9, june)));
        assert!(!f.matches(&object("photos/IMG_1.jpg", 101, june)));
        assert!(!f.matches(&object("photos/IMG_1.jpg", 50, 1_717_199_999)));
        assert!(!f.matches(&object("photos/IMG_1.jpg", 50, 1_719_792_000)), "`before` is exclusive");
        // `*` stays within a segment.
        let f = Filter::new(&parse(r#"{"bucket":"b","glob":"a/*.txt"}"#)).unwrap();
        assert!(f.matches(&object("a/x.txt", 1, 0)) && !f.matches(&object("a/b/x.txt", 1, 0)));
        // Times round-trip as RFC 3339.
        assert_eq!(serde_json::to_value(&s).unwrap()["modified_before"], "2024-07-01T00:00:00Z");
        assert_eq!(
            parse(r#"{"bucket":"b","modified_after":"2024-06-01T02:00:00+02:00"}"#).modified_after,
            Some(crate::model::Timestamp(1_717_200_000))
        );
    }

    #[test]
    fn the_glob_narrows_the_listing_prefix() {
        let p = |json: &str| listing_prefix(&parse(json)).map(str::to_string);
        assert_eq!(p(r#"{"bucket":"b","glob":"photos/20*/x.jpg"}"#).unwrap(), "photos/20");
        assert_eq!(p(r#"{"bucket":"b","prefix":"photos/2024/","glob":"photos/**"}"#).unwrap(), "photos/2024/");
        assert_eq!(p(r#"{"bucket":"b","prefix":"p/","glob":"q/*"}"#).unwrap_err().field(), "input.glob");
        assert_eq!(p(r#"{"bucket":"b","prefix":"p/","glob":"{a,b}/*"}"#).unwrap(), "p/");
        assert_eq!(p(r#"{"bucket":"b","prefix":"p/"}"#).unwrap(), "p/");
    }

    #[test]
    fn bad_filters_and_manifests_are_refused_naming_the_field() {
        let field = |json: &str| check(&parse(json)).unwrap_err().field();
        assert_eq!(field(r#"{"bucket":"b","glob":"a/[x"}"#), "input.glob");
        assert_eq!(field(r#"{"bucket":"b","min_size":5,"max_size":4}"#), "input.min_size");
        assert_eq!(field(r#"{"bucket":"b","modified_after":20,"modified_before":10}"#), "input.modified_after");
        assert_eq!(field(r#"{"bucket":"b","keys":["a"],"glob":"*"}"#), "input.glob");
        assert_eq!(field(r#"{"bucket":"b","keys":["a"],"max_size":3}"#), "input.max_size");
        assert_eq!(field(r#"{"bucket":"b","manifest":{"key":"m.csv"},"prefix":"p/"}"#), "input.manifest");
        assert_eq!(field(r#"{"bucket":"b","manifest":{"key":"m.csv"},"keys":["a"]}"#), "input.manifest");
        assert_eq!(field(r#"{"bucket":"b","manifest":{"key":"m.csv"},"glob":"*"}"#), "input.manifest");
        assert_eq!(field(r#"{"bucket":"b","manifest":{"key":"m.txt"}}"#), "input.manifest.format");
        assert_eq!(field(r#"{"bucket":"b","manifest":{"key":"/m.csv"}}"#), "input.manifest.key");
        assert!(check(&parse(r#"{"bucket":"b","manifest":{"key":"m.txt","format":"jsonl"}}"#)).is_ok());
        let e = serde_json::from_str::<InputSpec>(r#"{"bucket":"b","modified_after":"yesterday"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
