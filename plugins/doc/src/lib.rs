//! `doc`: documents to PDF, page images, plain text and Markdown, laid out
//! inside the sandbox.
//!
//! Reads DOCX (Office Open XML word processing), Markdown (CommonMark + GFM)
//! and plain text. `doc/pdf` and `doc/png` lay the document out with Typst
//! (`layout.rs`) in the fonts embedded in the component (`world.rs`);
//! `doc/text` and `doc/markdown` write the DOCX's text with its structure
//! (`render.rs`); `doc/info` answers with the document's figures as the
//! task's result. `plugins/README.md#doc` documents every parameter.

// Natively (unit tests only) the layout is not compiled, and what feeds it is unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod docx;
#[cfg(target_arch = "wasm32")]
mod export;
#[cfg(target_arch = "wasm32")]
mod layout;
mod numfmt;
#[cfg(target_arch = "wasm32")]
mod pdftext;
mod pptx;
mod reading;
mod render;
mod sources;
mod typeset;
#[cfg(target_arch = "wasm32")]
mod world;
mod xlsx;

use std::io::Write;

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError};
use serde_json::Value;

use crate::typeset::{PageSetup, Paper};

pub struct Doc;

/// Largest document read.
const MAX_INPUT: usize = 256 << 20;
/// Largest decompressed XML part (`word/document.xml` and the others).
pub(crate) const MAX_PART: u64 = 64 << 20;
/// Most pages laid out for one document.
pub(crate) const MAX_PAGES: usize = 2_000;
/// Widest page image, in pixels.
const MAX_WIDTH: u32 = 8_000;
/// Page image width when `w_` is not given.
const DEFAULT_WIDTH: u32 = 1_240;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Text,
    Markdown,
    Pdf {
        setup: PageSetup,
        title: bool,
    },
    Png {
        setup: PageSetup,
        width: u32,
        page: Option<usize>,
    },
    Info,
    /// XLSX sheets to CSV: all, or the one numbered (from 1).
    Csv {
        sheet: Option<usize>,
    },
}

const ACTIONS: &[&str] = &["text", "markdown", "pdf", "png", "csv", "info"];

fn setup(action: &kiln_plugin_sdk::style::Action) -> Result<PageSetup, StyleError> {
    let paper = match action.raw("paper") {
        None | Some("a4") => Paper::A4,
        Some("letter") => Paper::Letter,
        Some(other) => return Err(action.invalid("paper", other, "must be a4 or letter")),
    };
    let margin = action.get_in::<f32>("margin", 0.0..=60.0)?.unwrap_or(25.0);
    Ok(PageSetup { paper, margin_mm: margin })
}

fn parse(params: &str) -> Result<Action, StyleError> {
    let style = Style::parse(params)?;
    if let [first, second, ..] = style.actions.as_slice() {
        return Err(StyleError::UnknownAction {
            action: second.name.clone(),
            expected: format!("nothing after `{}` (doc takes one action)", first.name),
        });
    }
    let Some(action) = style.actions.first() else { return Ok(Action::Text) };
    Ok(match action.name.as_str() {
        "text" | "txt" => {
            action.expect_keys(&[], false)?;
            Action::Text
        }
        "markdown" | "md" => {
            action.expect_keys(&[], false)?;
            Action::Markdown
        }
        "pdf" => {
            action.expect_keys(&["paper", "margin", "title"], false)?;
            let title = action.get_in::<u8>("title", 0..=1)?.unwrap_or(1) == 1;
            Action::Pdf { setup: setup(action)?, title }
        }
        "png" => {
            action.expect_keys(&["paper", "margin", "w", "page"], false)?;
            let width = action.get_in::<u32>("w", 16..=MAX_WIDTH)?.unwrap_or(DEFAULT_WIDTH);
            let page = action.get_in::<usize>("page", 1..=MAX_PAGES)?;
            Action::Png { setup: setup(action)?, width, page }
        }
        "info" => {
            action.expect_keys(&[], false)?;
            Action::Info
        }
        "csv" => {
            action.expect_keys(&["sheet"], false)?;
            Action::Csv { sheet: action.get_in::<usize>("sheet", 1..=xlsx::MAX_SHEETS)? }
        }
        other => return Err(kiln_plugin_sdk::style::unknown_action(other, ACTIONS)),
    })
}

/// What the object is, by its first bytes and then its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Docx,
    Xlsx,
    Pptx,
    Markdown,
    Text,
}

fn kind(object: &ObjectInfo, bytes: &[u8]) -> Result<Kind, ProcessError> {
    let ext = object.extension().unwrap_or_default();
    if bytes.starts_with(b"PK") || ext == "docx" {
        return match ext.as_str() {
            "xlsx" | "xlsm" => Ok(Kind::Xlsx),
            "pptx" => Ok(Kind::Pptx),
            "odt" | "ods" | "odp" => Err(ProcessError::unsupported(format!(
                "`.{ext}` documents are not read by doc (it reads DOCX, XLSX, PPTX, Markdown and plain text)"
            ))),
            _ => Ok(Kind::Docx),
        };
    }
    if bytes.starts_with(b"%PDF") {
        return Err(ProcessError::unsupported("the object is a PDF; doc reads DOCX, Markdown and plain text"));
    }
    if std::str::from_utf8(bytes).is_err() {
        return Err(ProcessError::unsupported(format!(
            "not a DOCX and not UTF-8 text (the key's extension is `{ext}`)"
        )));
    }
    Ok(match ext.as_str() {
        "md" | "markdown" | "mdown" | "mkd" => Kind::Markdown,
        _ => Kind::Text,
    })
}

fn read(kind: Kind, bytes: Vec<u8>, with_images: bool) -> Result<docx::Document, ProcessError> {
    Ok(match kind {
        Kind::Docx => docx::read_with(bytes, with_images).map_err(ProcessError::UnsupportedInput)?,
        Kind::Xlsx => xlsx::read(bytes).map_err(ProcessError::UnsupportedInput)?.document(),
        Kind::Pptx => pptx::read(bytes, with_images).map_err(ProcessError::UnsupportedInput)?,
        Kind::Markdown => sources::markdown(&String::from_utf8_lossy(&bytes)),
        Kind::Text => sources::text(&String::from_utf8_lossy(&bytes)),
    })
}

/// A PDF's text, page by page (in the component).
#[cfg(target_arch = "wasm32")]
fn pdf_text(bytes: Vec<u8>) -> Result<docx::Document, ProcessError> {
    pdftext::read(bytes).map_err(ProcessError::UnsupportedInput)
}
#[cfg(not(target_arch = "wasm32"))]
fn pdf_text(_: Vec<u8>) -> Result<docx::Document, ProcessError> {
    Err(ProcessError::failed("reading PDFs is compiled into the WebAssembly component only"))
}

/// Each sheet of a workbook as CSV, named by `{sheetname}`.
fn csv(
    object: &ObjectInfo,
    bytes: Vec<u8>,
    sheet: Option<usize>,
    outputs: &mut Outputs<'_>,
) -> Result<Option<Value>, ProcessError> {
    if !bytes.starts_with(b"PK") {
        return Err(ProcessError::unsupported(format!(
            "doc/csv reads XLSX workbooks; `{}` is not a zip archive",
            object.key
        )));
    }
    let book = xlsx::read(bytes).map_err(ProcessError::UnsupportedInput)?;
    let chosen: Vec<&xlsx::Sheet> = match sheet {
        Some(n) => match book.sheets.get(n - 1) {
            Some(s) => vec![s],
            None => {
                let count = book.sheets.len();
                return Err(ProcessError::unsupported(format!("sheet_{n}: the workbook has {count} sheets")));
            }
        },
        None => book.sheets.iter().collect(),
    };
    for sheet in chosen {
        let bytes = sheet.csv().map_err(ProcessError::Failed)?;
        let options = kiln_plugin_sdk::OutputOptions::extension("csv")
            .content_type("text/csv")
            .variable("sheetname", &sheet.name);
        outputs.open_with(options)?.write_all(&bytes)?;
    }
    Ok(Some(serde_json::json!({ "sheets": book.sheets.iter().map(|s| &s.name).collect::<Vec<_>>() })))
}

/// Lay the document out and write what `action` asks (in the component).
#[cfg(not(target_arch = "wasm32"))]
fn export(_: Action, _: Kind, _: docx::Document, _: &mut Outputs<'_>) -> Result<Option<Value>, ProcessError> {
    Err(ProcessError::failed("the layout is compiled into the WebAssembly component only"))
}
#[cfg(target_arch = "wasm32")]
use export::export;

impl Processor for Doc {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "doc",
            env!("CARGO_PKG_VERSION"),
            "Documents (DOCX, XLSX, PPTX, Markdown, text) to PDF, page images, CSV, text and Markdown",
        )
        .reads(&["docx", "xlsx", "pptx", "md", "txt"])
        .writes(&["pdf", "png", "csv", "txt", "md"])
        .variables(&["page", "sheetname"])
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        parse(params).map(|_| ())
    }

    fn process_with_result(
        params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<Option<Value>, ProcessError> {
        let action = parse(params)?;
        let bytes = input.read_all(MAX_INPUT).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => ProcessError::unsupported(format!("document too large: {e}")),
            _ => ProcessError::failed(format!("reading the object: {e}")),
        })?;
        if let Action::Csv { sheet } = action {
            return csv(object, bytes, sheet, outputs);
        }
        if let Action::Text | Action::Markdown = action {
            // DOCX, XLSX and PPTX: the other inputs are text already.
            let document = match object.extension().as_deref() {
                Some("xlsx" | "xlsm") => read(Kind::Xlsx, bytes, false)?,
                Some("pptx") => read(Kind::Pptx, bytes, false)?,
                _ if bytes.starts_with(b"%PDF") => pdf_text(bytes)?,
                _ => read(Kind::Docx, bytes, false)?,
            };
            let (text, ext) = match action {
                Action::Text => (render::text(&document), "txt"),
                _ => (render::markdown(&document), "md"),
            };
            let mut out = outputs.open(Some(ext))?;
            out.write_all(text.as_bytes())?;
            return Ok(None);
        }
        if bytes.is_empty() {
            return Err(ProcessError::unsupported("the object is empty"));
        }
        let kind = kind(object, &bytes)?;
        match action {
            Action::Text | Action::Markdown | Action::Csv { .. } => unreachable!("handled above"),
            Action::Pdf { title, .. } => {
                let mut document = read(kind, bytes, true)?;
                if !title && kind == Kind::Markdown {
                    document.meta.title = None;
                }
                export(action, kind, document, outputs)
            }
            Action::Png { .. } | Action::Info => export(action, kind, read(kind, bytes, true)?, outputs),
        }
    }
}

kiln_plugin_sdk::export!(Doc);

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pptx;
#[cfg(test)]
mod tests_xlsx;
