//! Reading one part that holds paragraphs and tables (the body, a header or
//! footer, the footnotes) with the body parser, and the paths parts name.

use std::collections::HashMap;

use quick_xml::events::Event;

use super::Block;
use super::body::{DocParser, Refs};
use super::styles::StyleInfo;
use super::xml::{Ns, local, ns_of, read_xml, reference};

/// Elements whose whole content is left out: deleted text, the fallback copy
/// of alternate content, property-change history and content-control chrome.
pub(super) fn skipped(ns: Ns, name: &str) -> bool {
    match ns {
        Ns::W => matches!(
            name,
            "del" | "moveFrom" | "pPrChange" | "rPrChange" | "sdtPr" | "sdtEndPr" | "tblPr" | "tblGrid" | "trPr"
        ),
        Ns::Mc => name == "Fallback",
        Ns::Other => false,
    }
}

/// Most paragraphs and table cells read from one part: what is read is held
/// in memory whole, so a part of a million empty cells is refused here.
pub(super) const MAX_PARSED_BLOCKS: usize = 1_000_000;

/// What reading one part gave: its blocks, the footnotes it holds (in
/// `word/footnotes.xml`), and what it refers to.
pub(super) struct PartRead {
    pub(super) blocks: Vec<Block>,
    pub(super) notes: HashMap<String, Vec<Block>>,
    pub(super) refs: Refs,
}

/// Read a part holding paragraphs and tables: the body, a header or footer,
/// or the footnotes. `refs` carries on the numbering of images and notes
/// from the parts read before.
pub(super) fn parse_part(
    name: &str,
    xml: &str,
    rels: &HashMap<String, String>,
    styles: &HashMap<String, StyleInfo>,
    refs: Refs,
) -> Result<PartRead, String> {
    let mut p = DocParser::new(rels, "word/", styles, refs);
    let mut skip_depth = 0usize;
    read_xml(name, xml, |resolved, event| {
        let ns = ns_of(resolved);
        match event {
            Event::Start(e) => {
                if skip_depth > 0 {
                    skip_depth += 1;
                } else if skipped(ns, &local(&e)) {
                    skip_depth = 1;
                } else if ns == Ns::W && local(&e) == "fldSimple" && p.simple_field(&e) {
                    // Its content is the cached value of a field laid out afresh.
                    skip_depth = 1;
                } else {
                    p.start(ns, &e, false);
                    p.drawing(ns, &e);
                    if p.blocks_seen > MAX_PARSED_BLOCKS {
                        return Err(format!(
                            "{name} holds more than {MAX_PARSED_BLOCKS} paragraphs and table cells, over the limit"
                        ));
                    }
                }
            }
            Event::Empty(e) if skip_depth == 0 && !skipped(ns, &local(&e)) => {
                if ns == Ns::W && local(&e) == "fldSimple" {
                    p.simple_field(&e);
                }
                p.start(ns, &e, true);
                p.drawing(ns, &e);
            }
            Event::End(e) => {
                if skip_depth > 0 {
                    skip_depth -= 1;
                } else {
                    let name = e.local_name();
                    let name: &str = name.as_ref();
                    p.end(ns, name);
                }
            }
            Event::Text(t) if skip_depth == 0 && (p.in_text || p.in_instr) => {
                let s = t.xml10_content();
                p.push_text(&s);
            }
            Event::CData(t) if skip_depth == 0 && (p.in_text || p.in_instr) => {
                let s = t.xml10_content();
                p.push_text(&s);
            }
            Event::GeneralRef(r) if skip_depth == 0 && (p.in_text || p.in_instr) => {
                let name = r.xml10_content();
                if let Some(c) = reference(&name) {
                    p.push_text(c.encode_utf8(&mut [0; 4]));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let notes = std::mem::take(&mut p.notes);
    let refs = std::mem::take(&mut p.refs);
    Ok(PartRead { blocks: p.finish(), notes, refs })
}

/// A relationship's target as a path in the archive: relative to `base`
/// (`media/image1.png` → `word/media/image1.png`), or from the root (`/word/…`).
pub(crate) fn resolve_target(base: &str, target: &str) -> String {
    let joined = match target.strip_prefix('/') {
        Some(abs) => abs.to_string(),
        None => format!("{base}{target}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}
