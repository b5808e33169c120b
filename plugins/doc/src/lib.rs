//! `doc`: DOCX (Office Open XML word processing) to plain text or Markdown.
//!
//! `doc/text` (the default) writes UTF-8 text (`txt`); `doc/markdown` writes
//! Markdown (`md`). Both keep the structure of the document body: headings
//! (`Heading1`..`Heading6` and `Title` styles, or an outline level), bulleted
//! and numbered lists with their nesting (`w:numPr`, looked up in
//! `numbering.xml`), tables (GFM tables in Markdown, tab-separated rows in
//! text) and paragraphs. Markdown also keeps bold, italic, strikethrough and
//! hyperlinks.
//!
//! Limits: the DOCX is read into memory (at most 256 MiB), and each XML part is
//! decompressed to at most 64 MiB (zip bombs).

mod docx;
mod render;

use std::io::Write;

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError};

pub struct Doc;

/// Largest DOCX read.
const MAX_INPUT: usize = 256 << 20;
/// Largest decompressed XML part (`word/document.xml` and the others).
pub(crate) const MAX_PART: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Markdown,
}

fn parse(params: &str) -> Result<Format, StyleError> {
    let style = Style::parse(params)?;
    if let [first, second, ..] = style.actions.as_slice() {
        return Err(StyleError::UnknownAction {
            action: second.name.clone(),
            expected: format!("nothing after `{}` (doc takes one action)", first.name),
        });
    }
    let Some(action) = style.actions.first() else { return Ok(Format::Text) };
    let format = match action.name.as_str() {
        "text" | "txt" => Format::Text,
        "markdown" | "md" => Format::Markdown,
        other => return Err(kiln_plugin_sdk::style::unknown_action(other, &["text", "markdown"])),
    };
    action.expect_keys(&[], false)?;
    Ok(format)
}

impl Processor for Doc {
    fn info() -> PluginInfo {
        PluginInfo::new("doc", env!("CARGO_PKG_VERSION"), "DOCX to plain text or Markdown")
            .reads(&["docx"])
            .writes(&["txt", "md"])
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        parse(params).map(|_| ())
    }

    fn process(
        params: &str,
        _object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        let format = parse(params)?;
        let bytes = input.read_all(MAX_INPUT).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => ProcessError::unsupported(format!("DOCX too large: {e}")),
            _ => ProcessError::failed(format!("reading the object: {e}")),
        })?;
        let document = docx::read(bytes).map_err(ProcessError::UnsupportedInput)?;
        let (text, ext) = match format {
            Format::Text => (render::text(&document), "txt"),
            Format::Markdown => (render::markdown(&document), "md"),
        };
        let mut out = outputs.open(Some(ext))?;
        out.write_all(text.as_bytes())?;
        Ok(())
    }
}

kiln_plugin_sdk::export!(Doc);

#[cfg(test)]
mod tests;
