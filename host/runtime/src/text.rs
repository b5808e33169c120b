//! Caps on the text a plugin hands the host: error and `validate` messages,
//! `info()` fields, log lines. A plugin controls these strings, and the host
//! stores them (task records, plugin records) and sends them (API bodies,
//! webhooks), so each is cut to a configurable size.
//!
//! Strings are never copied whole: a log line is read in place from the
//! guest's memory ([`WasmStr`]) and cut there; what `info`, `validate` and
//! `process` return is lifted with a bounded copy (see `lifted`) and cut.

use serde::{Deserialize, Serialize};
use wasmtime::AsContext;
use wasmtime::component::WasmStr;

/// The caps, under `[runtime.text]`. Each counts bytes of UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextLimits {
    /// A message from `process` or `validate` (and so a task error or a 422's detail).
    pub max_message: usize,
    /// One `log` line.
    pub max_log_line: usize,
    /// `log` lines kept per task; later ones are dropped.
    pub max_log_lines: u32,
    /// Each of `info()`'s `name`, `version` and `description`.
    pub max_info_field: usize,
    /// Entries of `info()`'s `reads` and `writes` lists; each entry is cut to 64 bytes.
    pub max_info_formats: usize,
}

impl Default for TextLimits {
    fn default() -> Self {
        TextLimits {
            max_message: 4096,
            max_log_line: 2048,
            max_log_lines: 1000,
            max_info_field: 1024,
            max_info_formats: 64,
        }
    }
}

/// Bytes of one `reads`/`writes` entry: a format name or media type.
pub const MAX_FORMAT_NAME: usize = 64;

/// `text` cut to at most `cap` bytes on a UTF-8 boundary, with a visible
/// marker that gives the original length when anything was cut.
pub fn bounded(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        return text.to_string();
    }
    let mut cut = cap;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [cut at {cut} of {} bytes]", &text[..cut], text.len())
}

/// A string lifted with a bounded copy, cut to `cap` bytes; the marker gives
/// the length the plugin returned.
pub fn bounded_lifted(text: &super::lifted::LiftedStr, cap: usize) -> String {
    if text.head.len() == text.len && text.len <= cap {
        return text.head.clone();
    }
    let mut cut = cap.min(text.head.len());
    while !text.head.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [cut at {cut} of {} bytes]", &text.head[..cut], text.len)
}

/// The entry that stands for the `n` entries of a list cut at its cap.
fn more_not_shown(n: usize) -> String {
    format!("… [{n} more not shown]")
}

/// A list of `total` entries cut to its first `max` (taken from `kept`, each
/// already cut), with one last entry that says how many more there were.
pub fn bounded_list(total: usize, kept: impl Iterator<Item = String>, max: usize) -> Vec<String> {
    let mut out: Vec<String> = kept.take(max).collect();
    if total > out.len() {
        out.push(more_not_shown(total - out.len()));
    }
    out
}

/// A guest string, read in place and cut to `cap` bytes before it is copied.
/// Invalid UTF-8 is shown as such rather than trapping the call: the caller
/// wanted a message, and a broken one is still worth reporting.
pub fn bounded_wasm(store: impl AsContext<Data: 'static>, text: &WasmStr, cap: usize) -> String {
    match text.to_str(store.as_context()) {
        Ok(s) => bounded(&s, cap),
        Err(e) => format!("(the plugin's text is not valid UTF-8: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifted_text_is_cut_with_the_length_the_plugin_returned() {
        use super::super::lifted::LiftedStr;
        let whole = LiftedStr { head: "short".into(), len: 5 };
        assert_eq!(bounded_lifted(&whole, 64), "short");
        let huge = LiftedStr { head: "é".repeat(100), len: 100_000_000 };
        assert_eq!(bounded_lifted(&huge, 5), "éé… [cut at 4 of 100000000 bytes]");
    }

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(bounded("hello", 5), "hello");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary_with_the_original_length() {
        // `é` is two bytes: a cut at 4 would split it, so the cut backs off to 3.
        assert_eq!(bounded("abcé and more", 4), "abc… [cut at 3 of 14 bytes]");
        let big = "x".repeat(100_000);
        let cut = bounded(&big, 4096);
        assert!(cut.starts_with(&"x".repeat(4096)));
        assert!(cut.ends_with("… [cut at 4096 of 100000 bytes]"), "{}", &cut[4096..]);
    }
}
