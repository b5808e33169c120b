//! A PDF's text in reading order, page by page: every glyph the PDF draws,
//! with its Unicode value (`ToUnicode`, else its glyph name) and its place,
//! gathered into lines top to bottom and words left to right, and lines into
//! paragraphs where the gap between them is wider than a line.

use std::sync::Arc;

use hayro_interpret::font::Glyph;
use hayro_interpret::hayro_syntax::Pdf;
use hayro_interpret::{
    BlendMode, ClipPath, Context, Device, GlyphDrawMode, Image, InterpreterCache, InterpreterSettings, Paint,
    PathDrawMode, SoftMask, interpret_page,
};
use kurbo::{Affine, BezPath, Point, Rect};

use crate::MAX_PAGES;
use crate::docx::{Block, Document};
use crate::reading::{Placed, paragraphs};

/// Most glyphs read from one PDF (a dense page holds about 5,000).
pub const MAX_GLYPHS: usize = 8_000_000;

#[derive(Default)]
struct TextDevice {
    glyphs: Vec<Placed>,
    total: usize,
}

impl<'a> Device<'a> for TextDevice {
    fn set_soft_mask(&mut self, _: Option<SoftMask<'a>>) {}
    fn set_blend_mode(&mut self, _: BlendMode) {}
    fn draw_path(&mut self, _: &BezPath, _: Affine, _: &Paint<'a>, _: &PathDrawMode) {}
    fn push_clip_path(&mut self, _: &ClipPath) {}
    fn push_transparency_group(&mut self, _: f32, _: Option<SoftMask<'a>>, _: BlendMode) {}
    fn draw_glyph(
        &mut self,
        glyph: &Glyph<'a>,
        transform: Affine,
        glyph_transform: Affine,
        _: &Paint<'a>,
        _: &GlyphDrawMode,
    ) {
        self.total += 1;
        if self.total > MAX_GLYPHS {
            return;
        }
        let Some(text) = glyph.as_unicode() else { return };
        let text = match text {
            hayro_interpret::hayro_cmap::BfString::Char(c) => c.to_string(),
            hayro_interpret::hayro_cmap::BfString::String(s) => s,
        };
        let t = transform * glyph_transform;
        let origin = t * Point::ORIGIN;
        // The glyph space is 1,000 units to the em.
        let size = (t.determinant().abs().sqrt() * 1000.0).max(1.0);
        let advance = match glyph {
            Glyph::Outline(g) => g.advance_width().map(|a| a as f64 / 1000.0 * size),
            Glyph::Type3(_) => None,
        };
        self.glyphs.push(Placed { x: origin.x, y: origin.y, size, advance, text });
    }
    fn draw_image(&mut self, _: Image<'a, '_>, _: Affine) {}
    fn pop_clip_path(&mut self) {}
    fn pop_transparency_group(&mut self) {}
}

/// The PDF's text as a document: a paragraph per block of lines, each page
/// from a new page.
pub fn read(bytes: Vec<u8>) -> Result<Document, String> {
    let pdf = Pdf::new(bytes).map_err(|e| format!("not a readable PDF: {e:?}"))?;
    let pages = pdf.pages();
    if pages.len() > MAX_PAGES {
        return Err(format!("the PDF has {} pages, over the limit of {MAX_PAGES}", pages.len()));
    }
    let settings = InterpreterSettings {
        // Any face will do: only the glyphs' Unicode values are read.
        font_resolver: Arc::new(|_| Some((Arc::new(typst_assets::pdf::SANS), 0))),
        cmap_resolver: Arc::new(|_| None),
        warning_sink: Arc::new(|_| {}),
        render_annotations: false,
    };
    let cache = InterpreterCache::new();
    let mut doc = Document::default();
    let mut total = 0usize;
    for (n, page) in pages.iter().enumerate() {
        let (w, h) = page.render_dimensions();
        let mut context = Context::new(
            hayro_interpret::TransformExt::to_kurbo(&page.initial_transform(true)),
            Rect::new(0.0, 0.0, w as f64, h as f64),
            &cache,
            page.xref(),
            settings.clone(),
        );
        let mut device = TextDevice::default();
        interpret_page(page, &mut context, &mut device);
        total += device.total;
        if total > MAX_GLYPHS {
            return Err(format!("the PDF draws more than {MAX_GLYPHS} glyphs, over the limit"));
        }
        let mut paras = paragraphs(device.glyphs);
        if n > 0
            && let Some(first) = paras.first_mut()
        {
            first.break_before = true;
        }
        doc.blocks.extend(paras.into_iter().map(Block::Para));
    }
    Ok(doc)
}
