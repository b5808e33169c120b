//! Laying a document out with Typst, and exporting the pages as PDF or PNG.

use typst::diag::{SourceDiagnostic, Warned};
use typst_layout::PagedDocument;

use crate::docx::{Block, Document, Inline, Para};
use crate::typeset::{self, PageSetup};
use crate::world::{self, DocWorld};

use crate::MAX_PAGES;
/// Most characters of text in one document (about 2,000 dense pages).
pub const MAX_CHARS: usize = 8_000_000;
/// Most paragraphs and table cells in one document.
pub const MAX_BLOCKS: usize = 200_000;

/// A document laid out, with what the layout could not show.
pub struct Laid {
    pub pages: PagedDocument,
    /// Characters no embedded font has, in the order met (each once).
    pub missing_glyphs: Vec<char>,
    pub skipped_images: usize,
}

/// Check the limits that need no layout, then lay the document out.
pub fn lay_out(doc: &Document, setup: &PageSetup) -> Result<Laid, String> {
    let size = measure(doc);
    if size.chars > MAX_CHARS {
        return Err(format!("the document holds {} characters of text, over the limit of {MAX_CHARS}", size.chars));
    }
    if size.blocks > MAX_BLOCKS {
        return Err(format!(
            "the document holds {} paragraphs and table cells, over the limit of {MAX_BLOCKS}",
            size.blocks
        ));
    }
    if size.page_breaks >= MAX_PAGES {
        return Err(format!(
            "the document has {} page breaks: it would lay out over the limit of {MAX_PAGES} pages",
            size.page_breaks
        ));
    }
    let laid = typeset::source(doc, setup);
    let world = DocWorld::new(laid.source, laid.files);
    let Warned { output, warnings: _ } = typst::compile::<PagedDocument>(&world);
    let pages = output.map_err(|errors| layout_error(&errors))?;
    if pages.pages().len() > MAX_PAGES {
        return Err(format!("the document lays out to {} pages, over the limit of {MAX_PAGES}", pages.pages().len()));
    }
    Ok(Laid { pages, missing_glyphs: size.missing, skipped_images: laid.skipped_images })
}

/// The first error of a layout, for the task's message. The source is Kiln's
/// own, so an error here is a document Kiln could not express (a bad image,
/// most often), not the user's syntax.
fn layout_error(errors: &[SourceDiagnostic]) -> String {
    match errors.first() {
        Some(e) => format!("the document could not be laid out: {}", e.message),
        None => "the document could not be laid out".into(),
    }
}

pub fn pdf(laid: &Laid) -> Result<Vec<u8>, String> {
    typst_pdf::pdf(&laid.pages, &typst_pdf::PdfOptions::default())
        .map_err(|errors| format!("the PDF could not be written: {}", layout_error(&errors)))
}

/// Page `index` (from 0) as a PNG `width` pixels wide.
pub fn png(laid: &Laid, index: usize, width: u32) -> Result<Vec<u8>, String> {
    let page = &laid.pages.pages()[index];
    let page_width = page.frame.width().to_pt();
    let pixel_per_pt = width as f64 / page_width;
    let options = typst_render::RenderOptions { pixel_per_pt: pixel_per_pt.into(), ..Default::default() };
    let pixmap = typst_render::render(page, &options);
    pixmap.encode_png().map_err(|e| format!("the page image could not be encoded: {e}"))
}

/// What the limits and the task result count.
#[derive(Default)]
struct Size {
    chars: usize,
    blocks: usize,
    page_breaks: usize,
    missing: Vec<char>,
    /// Characters already looked up in the fonts.
    checked: std::collections::HashSet<char>,
}

fn measure(doc: &Document) -> Size {
    let mut size = Size::default();
    let all = doc.blocks.iter().chain(doc.footnotes.iter().flatten()).chain(&doc.header).chain(&doc.footer);
    for block in all {
        match block {
            Block::Para(p) => measure_para(p, &mut size),
            Block::Table(t) => {
                for cell in t.rows.iter().flatten() {
                    for p in &cell.paras {
                        measure_para(p, &mut size);
                    }
                }
            }
        }
    }
    size
}

/// Most distinct missing characters listed.
const MAX_MISSING_LISTED: usize = 200;

fn measure_para(p: &Para, size: &mut Size) {
    size.blocks += 1;
    if p.break_before {
        size.page_breaks += 1;
    }
    for run in &p.runs {
        if run.inline == Some(Inline::PageBreak) {
            size.page_breaks += 1;
        }
        for c in run.text.chars() {
            size.chars += 1;
            if c.is_ascii() || c.is_whitespace() || c.is_control() || size.missing.len() >= MAX_MISSING_LISTED {
                continue;
            }
            if size.checked.insert(c) && !world::has_glyph(c) {
                size.missing.push(c);
            }
        }
    }
}
