//! The layout actions: a document laid out, written as a PDF or page images,
//! or counted for `info`.

use std::io::Write;

use kiln_plugin_sdk::{OutputOptions, Outputs, ProcessError};
use serde_json::{Value, json};

use crate::typeset::PageSetup;
use crate::{Action, Kind, docx, layout, render};

/// The task result of a laid-out document: what it could not show.
fn layout_result(laid: &layout::Laid) -> Value {
    json!({
        "pages": laid.pages.pages().len(),
        "missing_glyphs": laid.missing_glyphs.iter().map(|c| format!("U+{:04X} {c}", *c as u32)).collect::<Vec<_>>(),
        "skipped_images": laid.skipped_images,
    })
}

pub(crate) fn export(
    action: Action,
    kind: Kind,
    document: docx::Document,
    outputs: &mut Outputs<'_>,
) -> Result<Option<Value>, ProcessError> {
    match action {
        Action::Pdf { setup, .. } => {
            let laid = layout::lay_out(&document, &setup).map_err(ProcessError::UnsupportedInput)?;
            let pdf = layout::pdf(&laid).map_err(ProcessError::Failed)?;
            let mut out = outputs.open_with(OutputOptions::extension("pdf").content_type("application/pdf"))?;
            out.write_all(&pdf)?;
            Ok(Some(layout_result(&laid)))
        }
        Action::Png { setup, width, page } => {
            let laid = layout::lay_out(&document, &setup).map_err(ProcessError::UnsupportedInput)?;
            let count = laid.pages.pages().len();
            let wanted: Vec<usize> = match page {
                Some(p) if p > count => {
                    return Err(ProcessError::unsupported(format!(
                        "page_{p}: the document has {count} page{}",
                        if count == 1 { "" } else { "s" }
                    )));
                }
                Some(p) => vec![p - 1],
                None => (0..count).collect(),
            };
            for index in wanted {
                let png = layout::png(&laid, index, width).map_err(ProcessError::Failed)?;
                let options = OutputOptions::extension("png").content_type("image/png").variable("page", index + 1);
                let mut out = outputs.open_with(options)?;
                out.write_all(&png)?;
            }
            Ok(Some(layout_result(&laid)))
        }
        Action::Info => {
            let words = render::text(&document).split_whitespace().count();
            let laid = layout::lay_out(&document, &PageSetup::default()).map_err(ProcessError::UnsupportedInput)?;
            let mut result = layout_result(&laid);
            result["title"] = json!(document.meta.title);
            result["author"] = json!(document.meta.author);
            result["words"] = json!(words);
            result["images"] = json!(document.images.len());
            result["footnotes"] = json!(document.footnotes.len());
            if kind == Kind::Xlsx {
                result["sheets"] = json!(document.meta.sheets);
            }
            if let Some(slides) = document.meta.slides {
                result["slides"] = json!(slides);
            }
            result["format"] = json!(match kind {
                Kind::Docx => "docx",
                Kind::Xlsx => "xlsx",
                Kind::Pptx => "pptx",
                Kind::Markdown => "markdown",
                Kind::Text => "text",
            });
            Ok(Some(result))
        }
        Action::Text | Action::Markdown | Action::Csv { .. } => unreachable!("these actions need no layout"),
    }
}
