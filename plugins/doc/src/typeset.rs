//! The document model as Typst source: what the PDF and the page images are
//! laid out from. Every piece of the document's text enters the source as a
//! string literal (`#"…"`), never as markup, so no text can be read as a
//! Typst command.

use std::fmt::Write;

use crate::docx::{Block, Document, Format, Inline, Para, ParaKind, Run, Table, VMerge};

/// The font families of body text and of code, embedded in `world.rs`.
pub const TEXT_FONT: &str = "Libertinus Serif";
pub const MONO_FONT: &str = "DejaVu Sans Mono";

/// Paper sizes, in points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paper {
    A4,
    Letter,
}

impl Paper {
    pub fn name(self) -> &'static str {
        match self {
            Paper::A4 => "a4",
            Paper::Letter => "us-letter",
        }
    }
    fn width_pt(self) -> f32 {
        match self {
            Paper::A4 => 595.28,
            Paper::Letter => 612.0,
        }
    }
}

/// How pages are set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageSetup {
    pub paper: Paper,
    /// Margins on every side, in millimetres.
    pub margin_mm: f32,
}

impl Default for PageSetup {
    fn default() -> Self {
        PageSetup { paper: Paper::A4, margin_mm: 25.0 }
    }
}

/// The source, and the files it names (images) with their bytes.
pub struct Laid {
    pub source: String,
    pub files: Vec<(String, Vec<u8>)>,
    /// Images left out: formats the renderer does not read (EMF, WMF, TIFF) or linked, not stored.
    pub skipped_images: usize,
}

pub fn source(doc: &Document, setup: &PageSetup) -> Laid {
    let mut w =
        Writer { doc, out: String::new(), text_width: 0.0, files: Vec::new(), skipped_images: 0, shown: Vec::new() };
    w.text_width = setup.paper.width_pt() - 2.0 * setup.margin_mm * 72.0 / 25.4;
    w.preamble(setup);
    w.blocks(&doc.blocks);
    Laid { source: w.out, files: w.files, skipped_images: w.skipped_images }
}

/// A Typst string literal of `s`.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Image formats the renderer reads, by their header.
fn image_extension(bytes: &[u8]) -> Option<&'static str> {
    match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Png => Some("png"),
        imagesize::ImageType::Jpeg => Some("jpg"),
        imagesize::ImageType::Gif => Some("gif"),
        imagesize::ImageType::Webp => Some("webp"),
        _ => None,
    }
}

struct Writer<'d> {
    doc: &'d Document,
    out: String,
    /// Width of the text area, in points: no image is laid out wider.
    text_width: f32,
    files: Vec<(String, Vec<u8>)>,
    /// Which images are in `files` (by index), so each is added once.
    shown: Vec<usize>,
    skipped_images: usize,
}

impl Writer<'_> {
    fn preamble(&mut self, setup: &PageSetup) {
        let meta = &self.doc.meta;
        let mut doc_args = Vec::new();
        if let Some(t) = &meta.title {
            doc_args.push(format!("title: {}", lit(t)));
        }
        if let Some(a) = &meta.author {
            doc_args.push(format!("author: {}", lit(a)));
        }
        if !doc_args.is_empty() {
            let _ = writeln!(self.out, "#set document({})", doc_args.join(", "));
        }
        let header = self.margin_content(&self.doc.header);
        let footer = self.margin_content(&self.doc.footer);
        let _ = writeln!(
            self.out,
            "#set page(paper: {}, flipped: {}, margin: {}mm, header: {}, footer: {})",
            lit(setup.paper.name()),
            // A presentation's slides are laid out landscape.
            self.doc.meta.slides.is_some(),
            setup.margin_mm,
            header.unwrap_or_else(|| "none".into()),
            footer.unwrap_or_else(|| "none".into()),
        );
        let _ = writeln!(self.out, "#set text(font: ({}, {}), size: 11pt)", lit(TEXT_FONT), lit(MONO_FONT));
        let _ = writeln!(self.out, "#show raw: set text(font: {})", lit(MONO_FONT));
        let _ = writeln!(self.out, "#set table(stroke: 0.5pt + luma(110), inset: 5pt)");
        self.out.push('\n');
    }

    /// A header or footer: its paragraphs as content, or none when empty.
    fn margin_content(&mut self, blocks: &[Block]) -> Option<String> {
        let paras = self.inline_paras(blocks.iter().filter_map(as_para));
        (!paras.is_empty()).then(|| format!("[{}]", paras.join("#linebreak()")))
    }

    /// The inline content of each paragraph that has some (a note, a cell, a margin).
    fn inline_paras<'p>(&mut self, paras: impl IntoIterator<Item = &'p Para>) -> Vec<String> {
        paras.into_iter().map(|p| self.inline(&p.runs, false)).filter(|c| !c.is_empty()).collect()
    }

    fn blocks(&mut self, blocks: &[Block]) {
        let mut i = 0;
        while i < blocks.len() {
            match &blocks[i] {
                Block::Table(t) => {
                    self.table(t);
                    i += 1;
                }
                Block::Para(p) if p.kind == ParaKind::Code => {
                    // Consecutive code paragraphs are one block.
                    let mut lines = Vec::new();
                    while let Some(Block::Para(p)) =
                        blocks.get(i).filter(|b| matches!(b, Block::Para(p) if p.kind == ParaKind::Code))
                    {
                        lines.push(p.text());
                        i += 1;
                    }
                    let _ = writeln!(self.out, "#raw(block: true, {})\n", lit(&lines.join("\n")));
                }
                Block::Para(p) => {
                    self.para(p);
                    i += 1;
                }
            }
        }
    }

    fn para(&mut self, p: &Para) {
        if p.break_before {
            self.out.push_str("#pagebreak(weak: true)\n");
        }
        match p.kind {
            ParaKind::Heading(level) => {
                let content = self.inline(&p.runs, false);
                let _ = writeln!(self.out, "#heading(level: {level})[{content}]\n");
            }
            ParaKind::ListItem { level, number } => {
                let content = self.inline(&p.runs, false);
                let indent = "  ".repeat(level as usize);
                let marker = match number {
                    Some(n) => format!("{n}."),
                    None => "-".into(),
                };
                // Items of one list follow each other without a blank line.
                let _ = writeln!(self.out, "{indent}{marker} {content}");
            }
            ParaKind::Quote => {
                let content = self.inline(&p.runs, false);
                let _ = writeln!(self.out, "#quote(block: true)[{content}]\n");
            }
            ParaKind::Normal | ParaKind::Code => {
                let content = self.inline(&p.runs, true);
                if content.is_empty() {
                    // An empty paragraph is vertical space in Word.
                    self.out.push_str("#v(0.6em)\n\n");
                } else {
                    let _ = writeln!(self.out, "{content}\n");
                }
            }
        }
    }

    /// The runs as inline content. `top`: the paragraph is at the top level,
    /// where a page break may stand.
    fn inline(&mut self, runs: &[Run], top: bool) -> String {
        let mut out = String::new();
        for run in runs {
            let piece = match run.inline {
                None => text(&run.text),
                Some(Inline::Image { index, width_pt, height_pt }) => self.image(index, width_pt, height_pt),
                Some(Inline::Footnote(i)) => {
                    let doc = self.doc;
                    let note = doc.footnotes.get(i).map(Vec::as_slice).unwrap_or_default();
                    format!("#footnote[{}]", self.inline_paras(note.iter().filter_map(as_para)).join("#parbreak()"))
                }
                Some(Inline::PageBreak) if top => "\n#pagebreak()\n".into(),
                Some(Inline::PageBreak) => "#linebreak()".into(),
                Some(Inline::PageNumber) => "#context counter(page).display()".into(),
                Some(Inline::PageCount) => "#context counter(page).final().first()".into(),
            };
            if piece.is_empty() {
                continue;
            }
            out.push_str(&formatted(&run.format, piece));
        }
        out
    }

    fn image(&mut self, index: usize, width_pt: f32, height_pt: f32) -> String {
        let Some(image) = self.doc.images.get(index) else { return String::new() };
        let Some(ext) = image_extension(&image.bytes) else {
            self.skipped_images += 1;
            return String::new();
        };
        let path = format!("/img/{index}.{ext}");
        if !self.shown.contains(&index) {
            self.shown.push(index);
            self.files.push((path.clone(), image.bytes.clone()));
        }
        if width_pt <= 0.0 || height_pt <= 0.0 {
            return format!("#box(image({}, width: {:.1}pt))", lit(&path), self.text_width.min(200.0));
        }
        // Never wider than the text: scale down, keeping the proportions.
        let scale = (self.text_width / width_pt).min(1.0);
        format!(
            "#box(image({}, width: {:.1}pt, height: {:.1}pt, fit: \"stretch\"))",
            lit(&path),
            width_pt * scale,
            height_pt * scale
        )
    }

    fn table(&mut self, t: &Table) {
        let columns = t.rows.iter().map(|r| r.iter().map(|c| c.span as usize).sum::<usize>()).max().unwrap_or(0);
        if columns == 0 {
            return;
        }
        let mut cells = Vec::new();
        for (r, row) in t.rows.iter().enumerate() {
            let mut col = 0usize;
            let mut used = 0usize;
            for cell in row {
                let span = cell.span as usize;
                let continues = cell.merge == VMerge::Continue && r > 0 && merged_above(t, r, col);
                if !continues {
                    let rowspan = if cell.merge == VMerge::Restart { 1 + continued_below(t, r, col) } else { 1 };
                    let content = self.inline_paras(&cell.paras).join("#parbreak()");
                    if span > 1 || rowspan > 1 {
                        cells.push(format!("table.cell(colspan: {span}, rowspan: {rowspan})[{content}]"));
                    } else {
                        cells.push(format!("[{content}]"));
                    }
                }
                col += span;
                used += span;
            }
            // Short rows are filled, so that the next row starts a new line.
            for _ in used..columns {
                cells.push("[]".into());
            }
        }
        let _ = writeln!(self.out, "#table(columns: {columns}, {})\n", cells.join(", "));
    }
}

fn as_para(block: &Block) -> Option<&Para> {
    match block {
        Block::Para(p) => Some(p),
        Block::Table(_) => None,
    }
}

/// The cell of row `r` covering grid column `col`, if one starts there.
fn cell_at(t: &Table, r: usize, col: usize) -> Option<&crate::docx::Cell> {
    let mut c = 0usize;
    for cell in t.rows.get(r)? {
        if c == col {
            return Some(cell);
        }
        c += cell.span as usize;
        if c > col {
            return None;
        }
    }
    None
}

/// Whether the cell above row `r` at `col` starts or continues a merge.
fn merged_above(t: &Table, r: usize, col: usize) -> bool {
    cell_at(t, r - 1, col).is_some_and(|c| c.merge != VMerge::None)
}

/// How many rows below `r` continue the merge starting at `col`.
fn continued_below(t: &Table, r: usize, col: usize) -> usize {
    (r + 1..t.rows.len())
        .take_while(|&below| cell_at(t, below, col).is_some_and(|c| c.merge == VMerge::Continue))
        .count()
}

/// Text as content: string literals, with line breaks and tabs laid out.
fn text(s: &str) -> String {
    let mut out = String::new();
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("#linebreak()");
        }
        for (j, piece) in line.split('\t').enumerate() {
            if j > 0 {
                out.push_str("#h(2em)");
            }
            if !piece.is_empty() {
                out.push('#');
                out.push_str(&lit(piece));
            }
        }
    }
    out
}

/// `content` with a run's formatting around it.
fn formatted(f: &Format, content: String) -> String {
    let mut c = content;
    if f.mono {
        c = format!("#text(font: {})[{c}]", lit(MONO_FONT));
    }
    if f.bold {
        c = format!("#strong[{c}]");
    }
    if f.italic {
        c = format!("#emph[{c}]");
    }
    if f.underline {
        c = format!("#underline[{c}]");
    }
    if f.strike {
        c = format!("#strike[{c}]");
    }
    if let Some(url) = f.link.as_deref().filter(|u| is_external(u)) {
        c = format!("#link({})[{c}]", lit(url));
    }
    c
}

/// A link a PDF reader can follow: a web or mail address.
fn is_external(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::docx::{Cell, Run};

    fn cell(text: &str, span: u32, merge: VMerge) -> Cell {
        let runs = if text.is_empty() { vec![] } else { vec![Run { text: text.into(), ..Run::default() }] };
        Cell { paras: vec![Para::new(ParaKind::Normal, runs)], span, merge }
    }

    #[test]
    fn cells_merged_across_and_down_become_spans_and_short_rows_are_filled() {
        let table = Table {
            rows: vec![
                vec![cell("A", 2, VMerge::None)],
                vec![cell("B", 1, VMerge::Restart), cell("C", 1, VMerge::None)],
                vec![cell("", 1, VMerge::Continue), cell("D", 1, VMerge::None)],
                vec![cell("E", 1, VMerge::None)],
            ],
        };
        let doc = Document { blocks: vec![Block::Table(table)], ..Document::default() };
        let src = source(&doc, &PageSetup::default()).source;
        let line = src.lines().find(|l| l.starts_with("#table(")).unwrap();
        assert_eq!(
            line,
            r##"#table(columns: 2, table.cell(colspan: 2, rowspan: 1)[#"A"], table.cell(colspan: 1, rowspan: 2)[#"B"], [#"C"], [#"D"], [#"E"], [])"##
        );
    }

    #[test]
    fn lists_nest_by_indent_and_keep_their_numbers() {
        let item = |level, number, text: &str| {
            Block::Para(Para::new(
                ParaKind::ListItem { level, number },
                vec![Run { text: text.into(), ..Run::default() }],
            ))
        };
        let doc = Document {
            blocks: vec![item(0, Some(3), "three"), item(1, None, "inner"), item(0, Some(4), "four")],
            ..Document::default()
        };
        let src = source(&doc, &PageSetup::default()).source;
        assert!(src.contains("3. #\"three\"\n  - #\"inner\"\n4. #\"four\"\n"), "{src}");
    }

    #[test]
    fn images_are_never_wider_than_the_text() {
        let run =
            Run { inline: Some(Inline::Image { index: 0, width_pt: 2000.0, height_pt: 1000.0 }), ..Run::default() };
        // A PNG header is enough to know the format.
        let png = [
            &[137u8, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 2, 0, 0, 0, 1][..],
            &[8, 2, 0, 0, 0][..],
        ]
        .concat();
        let doc = Document {
            blocks: vec![Block::Para(Para::new(ParaKind::Normal, vec![run]))],
            images: vec![crate::docx::Image { bytes: png }],
            ..Document::default()
        };
        let laid = source(&doc, &PageSetup::default());
        assert_eq!(laid.files.len(), 1);
        assert!(laid.source.contains("width: 453.5pt, height: 226.8pt"), "{}", laid.source);
    }

    #[test]
    fn text_is_a_string_literal_whatever_it_holds() {
        assert_eq!(lit(r#"a "b" \c #d"#), r#""a \"b\" \\c #d""#);
        assert_eq!(text("one\ntwo\tthree"), r##"#"one"#linebreak()#"two"#h(2em)#"three""##);
    }
}
