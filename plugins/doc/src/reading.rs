//! Reading order of text placed on a page: glyphs into lines by their
//! baseline, words by the gaps between them, and lines into paragraphs where
//! the gap is wider than a line or the size changes. `pdftext.rs` feeds it the
//! glyphs a PDF draws.

use crate::docx::{Para, ParaKind, Run};

/// One glyph: where its origin lands on the page (y down), its size, its text.
pub struct Placed {
    pub x: f64,
    pub y: f64,
    pub size: f64,
    /// How far the next glyph starts, when the font says.
    pub advance: Option<f64>,
    pub text: String,
}

/// Glyphs into lines (by their baseline), words (by the gaps) and paragraphs.
pub fn paragraphs(mut glyphs: Vec<Placed>) -> Vec<Para> {
    glyphs.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
    // Lines: glyphs whose baselines are within a third of their size.
    let mut lines: Vec<(f64, f64, Vec<Placed>)> = Vec::new();
    for g in glyphs {
        match lines.last_mut() {
            Some((y, size, line)) if (g.y - *y).abs() < size.max(g.size) / 3.0 => line.push(g),
            _ => lines.push((g.y, g.size, vec![g])),
        }
    }
    let mut paras = Vec::new();
    let mut current = String::new();
    let mut last: Option<(f64, f64)> = None;
    for (y, size, mut line) in lines {
        line.sort_by(|a, b| a.x.total_cmp(&b.x));
        let mut text = String::new();
        let mut end: Option<f64> = None;
        for g in &line {
            // A gap wider than a sixth of the size is a space (a space is about a quarter).
            if let Some(e) = end
                && g.x - e > g.size * 0.16
                && !text.ends_with(' ')
            {
                text.push(' ');
            }
            text.push_str(&g.text);
            // Without an advance width, a glyph is taken as half its size wide.
            end = Some(g.x + g.advance.unwrap_or(g.size * 0.5 * g.text.chars().count() as f64));
        }
        let text = text.trim().to_string();
        if text.is_empty() {
            continue;
        }
        // A gap of more than one and a half lines, or a change of size (a
        // heading and its text), starts a paragraph.
        if let Some((last_y, last_size)) = last
            && (y - last_y > last_size.max(size) * 1.5 || (size - last_size).abs() > last_size * 0.15)
            && !current.is_empty()
        {
            paras.push(Para::new(ParaKind::Normal, vec![Run { text: std::mem::take(&mut current), ..Run::default() }]));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&text);
        last = Some((y, size));
    }
    if !current.is_empty() {
        paras.push(Para::new(ParaKind::Normal, vec![Run { text: current, ..Run::default() }]));
    }
    paras
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line of words at `y`, each glyph 0.5 of the size wide, a space of 0.25 between words.
    fn line(y: f64, size: f64, words: &[&str]) -> Vec<Placed> {
        let mut x = 72.0;
        let mut out = Vec::new();
        for w in words {
            for c in w.chars() {
                out.push(Placed { x, y, size, advance: Some(size * 0.5), text: c.to_string() });
                x += size * 0.5;
            }
            x += size * 0.25;
        }
        out
    }

    fn texts(paras: &[Para]) -> Vec<String> {
        paras.iter().map(Para::text).collect()
    }

    #[test]
    fn lines_words_and_paragraphs_in_reading_order() {
        let mut glyphs = Vec::new();
        glyphs.extend(line(100.0, 18.0, &["Title"]));
        glyphs.extend(line(130.0, 11.0, &["first", "line"]));
        glyphs.extend(line(143.0, 11.0, &["second", "line"]));
        glyphs.extend(line(180.0, 11.0, &["after", "a", "gap"]));
        // Drawn in any order: reading order comes from the places.
        glyphs.reverse();
        assert_eq!(texts(&paragraphs(glyphs)), ["Title", "first line second line", "after a gap"]);
    }
}
