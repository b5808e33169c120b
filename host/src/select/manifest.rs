//! Manifests: an object in a bucket that lists the keys a job processes.
//!
//! - CSV: one key per line, or `bucket,key` (S3 Batch Operations style, where
//!   the bucket must be the job's input bucket); an optional first line
//!   `key` or `bucket,key` is a header; fields may be quoted as in RFC 4180
//!   (`"a,b.jpg"`, `"say ""hi"".txt"`). Keys are taken as written, not URL-decoded.
//! - JSON Lines: `{"key": "…"}` per line (a `bucket` member, if present, must
//!   be the input bucket; other members are ignored).
//!
//! Blank lines are skipped; a UTF-8 byte-order mark and `\r\n` line ends are
//! accepted. The manifest is read as a stream, a line at a time: memory does
//! not grow with it. The cursor `LINES:BYTES` (lines read, byte offset after
//! them) lets planning resume after a crash with a ranged read from that offset.

use bytes::BytesMut;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;

use super::{Page, PageError, SelectionError, key_problem};
use crate::model::{JobSpec, ManifestFormat, ManifestSpec};
use crate::objects::{Buckets, ObjectsError};
use crate::runtime::ObjectMeta;

/// The longest line accepted: keys are at most 1024 bytes, so a longer line
/// is not a manifest line, and the bound keeps memory flat.
pub const MAX_LINE: usize = 64 * 1024;

/// A manifest that cannot be read, or a line of it that is not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest `{manifest}` line {line}: {reason}")]
    Line { manifest: String, line: u64, reason: String },
    #[error("manifest `{manifest}`: {reason}")]
    Read { manifest: String, reason: String },
}

/// The manifest's format: as given, else from the key's extension.
pub fn format_of(m: &ManifestSpec) -> Result<ManifestFormat, SelectionError> {
    if let Some(f) = m.format {
        return Ok(f);
    }
    let ext = m.key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "csv" => Ok(ManifestFormat::Csv),
        "jsonl" | "ndjson" => Ok(ManifestFormat::Jsonl),
        _ => Err(SelectionError::BadManifest {
            field: "format",
            reason: format!(
                "cannot tell the format of `{}` from its extension: give \"format\": \"csv\" or \"jsonl\"",
                m.key
            ),
        }),
    }
}

/// `LINES:BYTES`.
pub fn parse_cursor(cursor: &str) -> Option<(u64, u64)> {
    let (lines, bytes) = cursor.split_once(':')?;
    Some((lines.parse().ok()?, bytes.parse().ok()?))
}

/// Reads a manifest line by line, from a cursor.
pub struct ManifestReader {
    stream: BoxStream<'static, Result<bytes::Bytes, ObjectsError>>,
    buf: BytesMut,
    eof: bool,
    /// Lines read so far, and the byte offset after them.
    line: u64,
    offset: u64,
    format: ManifestFormat,
    input_bucket: String,
    /// `bucket/key`, for messages.
    shown: String,
    /// When outputs go to the input bucket: the fixed head of every output
    /// key. A listed key under it could be an output, so it is refused.
    output_head: Option<String>,
}

impl ManifestReader {
    /// Open the manifest of `spec.input`, resumed from a planner cursor.
    pub async fn open(buckets: &Buckets, spec: &JobSpec, cursor: Option<&str>) -> Result<ManifestReader, PageError> {
        let m = spec.input.manifest.as_ref().expect("a manifest selection");
        let format = format_of(m)?;
        let bucket_name = m.bucket.as_deref().unwrap_or(&spec.input.bucket);
        let shown = format!("{bucket_name}/{}", m.key);
        let (line, offset) = match cursor {
            None => (0, 0),
            Some(c) => parse_cursor(c).ok_or_else(|| ManifestError::Read {
                manifest: shown.clone(),
                reason: format!("bad planner cursor `{c}`"),
            })?,
        };
        let bucket = buckets.get(bucket_name)?;
        let stream = bucket
            .read_from(&m.key, offset)
            .await
            .map_err(|e| ManifestError::Read { manifest: shown.clone(), reason: e.to_string() })?;
        let output_head = (spec.output.bucket == spec.input.bucket)
            .then(|| crate::template::Template::parse(&spec.output.template).ok().map(|t| t.literal_head().to_string()))
            .flatten()
            .filter(|h| !h.is_empty());
        Ok(ManifestReader {
            stream,
            buf: BytesMut::new(),
            eof: false,
            line,
            offset,
            format,
            input_bucket: spec.input.bucket.clone(),
            shown,
            output_head,
        })
    }

    /// A reader over any byte stream (tests).
    pub fn from_stream(
        stream: BoxStream<'static, Result<bytes::Bytes, ObjectsError>>,
        format: ManifestFormat,
        input_bucket: &str,
        output_head: Option<&str>,
    ) -> ManifestReader {
        ManifestReader {
            stream,
            buf: BytesMut::new(),
            eof: false,
            line: 0,
            offset: 0,
            format,
            input_bucket: input_bucket.to_string(),
            shown: format!("{input_bucket}/manifest"),
            output_head: output_head.map(str::to_string),
        }
    }

    /// Where to resume after the lines read so far.
    pub fn cursor(&self) -> String {
        format!("{}:{}", self.line, self.offset)
    }

    fn line_error(&self, line: u64, reason: impl Into<String>) -> ManifestError {
        ManifestError::Line { manifest: self.shown.clone(), line, reason: reason.into() }
    }

    async fn fill(&mut self) -> Result<(), ManifestError> {
        match self.stream.next().await {
            Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(ManifestError::Read { manifest: self.shown.clone(), reason: e.to_string() }),
            None => self.eof = true,
        }
        Ok(())
    }

    /// The next line without its line end, or `None` at the end.
    async fn next_line(&mut self) -> Result<Option<String>, ManifestError> {
        let mut searched = 0;
        loop {
            if let Some(pos) = self.buf[searched..].iter().position(|b| *b == b'\n') {
                let raw = self.buf.split_to(searched + pos + 1);
                return self.take_line(&raw[..raw.len() - 1], true).map(Some);
            }
            searched = self.buf.len();
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let raw = self.buf.split();
                return self.take_line(&raw, false).map(Some);
            }
            if self.buf.len() > MAX_LINE {
                return Err(self.line_error(self.line + 1, format!("longer than {MAX_LINE} bytes")));
            }
            self.fill().await?;
        }
    }

    fn take_line(&mut self, raw: &[u8], newline: bool) -> Result<String, ManifestError> {
        self.line += 1;
        self.offset += raw.len() as u64 + u64::from(newline);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw).map_err(|_| self.line_error(self.line, "not UTF-8"))?;
        let text = if self.line == 1 { text.strip_prefix('\u{feff}').unwrap_or(text) } else { text };
        Ok(text.to_string())
    }

    /// Whether nothing is left to read.
    async fn at_end(&mut self) -> Result<bool, ManifestError> {
        while self.buf.is_empty() && !self.eof {
            self.fill().await?;
        }
        Ok(self.buf.is_empty() && self.eof)
    }

    /// The key on the next entry line with its line number, skipping blank
    /// lines and a header; `None` at the end.
    pub async fn next_entry(&mut self) -> Result<Option<(u64, String)>, ManifestError> {
        while let Some(text) = self.next_line().await? {
            match self.parse(&text) {
                Ok(Some(key)) => return Ok(Some((self.line, key))),
                Ok(None) => continue,
                Err(reason) => return Err(self.line_error(self.line, reason)),
            }
        }
        Ok(None)
    }

    /// Up to `lines` lines of the manifest, as a page of objects (their
    /// metadata is read with the object), with the cursor after them.
    pub async fn next_page(&mut self, lines: usize) -> Result<Page, ManifestError> {
        let stop = self.line + lines as u64;
        let mut objects = Vec::new();
        while self.line < stop {
            let Some(text) = self.next_line().await? else { break };
            match self.parse(&text) {
                Ok(Some(key)) => {
                    objects.push(ObjectMeta { bucket: self.input_bucket.clone(), key, ..Default::default() })
                }
                Ok(None) => {}
                Err(reason) => return Err(self.line_error(self.line, reason)),
            }
        }
        let done = self.at_end().await?;
        Ok(Page { objects, cursor: Some(self.cursor()), done })
    }

    /// The key of one line; `None` for a blank line or the header.
    fn parse(&self, text: &str) -> Result<Option<String>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let (bucket, key) = match self.format {
            ManifestFormat::Csv => {
                let mut fields = parse_csv_line(text)?;
                if self.line == 1 && is_header(&fields) {
                    return Ok(None);
                }
                match fields.len() {
                    1 => (None, fields.pop().expect("one field")),
                    2 => {
                        let key = fields.pop().expect("two fields");
                        (fields.pop(), key)
                    }
                    n => return Err(format!("expected `key` or `bucket,key`, found {n} fields")),
                }
            }
            ManifestFormat::Jsonl => {
                #[derive(Deserialize)]
                struct Entry {
                    key: String,
                    #[serde(default)]
                    bucket: Option<String>,
                }
                let e: Entry = serde_json::from_str(text)
                    .map_err(|e| format!("expected a JSON object like {{\"key\": \"photos/cat.jpg\"}}: {e}"))?;
                (e.bucket, e.key)
            }
        };
        if let Some(b) = bucket
            && b != self.input_bucket
        {
            return Err(format!("bucket `{b}` is not the job's input bucket `{}`", self.input_bucket));
        }
        if let Some(reason) = key_problem(&key) {
            return Err(format!("invalid key: {reason}"));
        }
        if let Some(head) = &self.output_head
            && key.starts_with(head.as_str())
        {
            return Err(format!(
                "key `{key}` is where this job writes its outputs (`{head}…` in bucket `{}`), so it could be an output",
                self.input_bucket
            ));
        }
        Ok(Some(key))
    }
}

fn is_header(fields: &[String]) -> bool {
    let lower: Vec<String> = fields.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
    lower == ["key"] || lower == ["bucket", "key"]
}

/// The fields of one CSV line, as in RFC 4180: a field in double quotes may
/// hold commas and `""` for a quote. A quoted field cannot span lines.
pub fn parse_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed (a key cannot span lines)".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("`{c}` after a closing quote: quote the whole field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err("a `\"` inside an unquoted field: quote the field and double the quote".into());
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(text: &str, format: ManifestFormat, chunk: usize) -> ManifestReader {
        let chunks: Vec<Result<bytes::Bytes, ObjectsError>> =
            text.as_bytes().chunks(chunk.max(1)).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        ManifestReader::from_stream(futures::stream::iter(chunks).boxed(), format, "in", Some("out/"))
    }

    async fn keys(text: &str, format: ManifestFormat) -> Result<Vec<(u64, String)>, ManifestError> {
        let mut r = reader(text, format, 3);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().await? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn csv_fields_follow_rfc_4180() {
        assert_eq!(parse_csv_line("a.jpg").unwrap(), vec!["a.jpg"]);
        assert_eq!(parse_csv_line("in,a b.jpg").unwrap(), vec!["in", "a b.jpg"]);
        assert_eq!(parse_csv_line(r#""in","x,""y"".txt""#).unwrap(), vec!["in", r#"x,"y".txt"#]);
        assert_eq!(parse_csv_line(r#""""#).unwrap(), vec![""]);
        assert_eq!(parse_csv_line("a,").unwrap(), vec!["a", ""]);
        assert!(parse_csv_line(r#""open"#).unwrap_err().contains("not closed"));
        assert!(parse_csv_line(r#""a"b"#).unwrap_err().contains("after a closing quote"));
        assert!(parse_csv_line(r#"a"b"#).unwrap_err().contains("unquoted"));
    }

    #[tokio::test]
    async fn csv_manifests_with_header_bom_crlf_and_blank_lines() {
        let text = "\u{feff}bucket,key\r\nin,a/1.jpg\r\n\r\nin,\"b/2,3.jpg\"\nc/4.jpg";
        let got = keys(text, ManifestFormat::Csv).await.unwrap();
        assert_eq!(got, vec![(2, "a/1.jpg".into()), (4, "b/2,3.jpg".into()), (5, "c/4.jpg".into())]);
        // A header is only a header on line 1.
        let got = keys("a.jpg\nkey\n", ManifestFormat::Csv).await.unwrap();
        assert_eq!(got, vec![(1, "a.jpg".into()), (2, "key".into())]);
    }

    #[tokio::test]
    async fn bad_lines_are_named_by_number() {
        let e = keys("a.jpg\nother,b.jpg\n", ManifestFormat::Csv).await.unwrap_err();
        assert_eq!(e.to_string(), "manifest `in/manifest` line 2: bucket `other` is not the job's input bucket `in`");
        let e = keys("a.jpg\nx,y,z\n", ManifestFormat::Csv).await.unwrap_err().to_string();
        assert!(e.contains("line 2: expected `key` or `bucket,key`, found 3 fields"), "{e}");
        let e = keys("a/../b\n", ManifestFormat::Csv).await.unwrap_err().to_string();
        assert!(e.contains("line 1: invalid key"), "{e}");
        let e = keys("out/x.jpg\n", ManifestFormat::Csv).await.unwrap_err().to_string();
        assert!(e.contains("where this job writes its outputs"), "{e}");
        let e = keys("{\"key\": \"a\"}\n{\"name\": \"b\"}\n", ManifestFormat::Jsonl).await.unwrap_err().to_string();
        assert!(e.contains("line 2: expected a JSON object"), "{e}");
        let long = "x".repeat(MAX_LINE + 10);
        let e = keys(&long, ManifestFormat::Csv).await.unwrap_err().to_string();
        assert!(e.contains("line 1: longer than"), "{e}");
    }

    #[tokio::test]
    async fn jsonl_manifests() {
        let text = "{\"key\": \"a.jpg\", \"size\": 3}\n\n{\"bucket\": \"in\", \"key\": \"b.jpg\"}\n";
        assert_eq!(keys(text, ManifestFormat::Jsonl).await.unwrap(), vec![(1, "a.jpg".into()), (3, "b.jpg".into())]);
    }

    #[tokio::test]
    async fn pages_carry_a_cursor_that_resumes_at_the_byte() {
        let text: String = (0..10).map(|i| format!("k{i}.txt\n")).collect();
        let mut r = reader(&text, ManifestFormat::Csv, 4);
        let p = r.next_page(4).await.unwrap();
        assert_eq!(p.objects.len(), 4);
        assert!(!p.done);
        let (lines, bytes) = parse_cursor(p.cursor.as_deref().unwrap()).unwrap();
        assert_eq!((lines, bytes), (4, 28));
        assert!(text[bytes as usize..].starts_with("k4.txt"));
        let p = r.next_page(6).await.unwrap();
        assert_eq!(p.objects.last().unwrap().key, "k9.txt");
        assert!(p.done, "a page that ends at the end is the last");
        assert_eq!(p.cursor.as_deref(), Some("10:70"));
        // Without a final newline, the offset is the length.
        let mut r = reader("a\nb", ManifestFormat::Csv, 1);
        let p = r.next_page(5).await.unwrap();
        assert_eq!((p.objects.len(), p.done, p.cursor.as_deref()), (2, true, Some("2:3")));
    }

    #[test]
    fn format_comes_from_the_extension() {
        let m = |key: &str| ManifestSpec { key: key.into(), ..Default::default() };
        assert_eq!(format_of(&m("l/a.CSV")).unwrap(), ManifestFormat::Csv);
        assert_eq!(format_of(&m("l/a.ndjson")).unwrap(), ManifestFormat::Jsonl);
        assert!(format_of(&m("l/a.txt")).unwrap_err().to_string().contains("\"format\""));
    }
}
