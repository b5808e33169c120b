//! `docProps/core.xml`: the document's title and author.

use quick_xml::events::Event;

use super::xml::{local, read_xml};

/// What the document says about itself.
#[derive(Debug, Default, Clone)]
pub struct Meta {
    pub title: Option<String>,
    pub author: Option<String>,
    /// A workbook's sheet names, in order.
    pub sheets: Vec<String>,
    /// A presentation's slide count; its pages are laid out landscape.
    pub slides: Option<usize>,
}

/// Longest title or author kept (the PDF's metadata and the task result).
const MAX_FIELD: usize = 1_000;

pub(crate) fn parse_core(xml: &str) -> Result<Meta, String> {
    let mut meta = Meta::default();
    let mut current: Option<String> = None;
    read_xml("docProps/core.xml", xml, |_, event| {
        match event {
            Event::Start(e) => current = Some(local(&e)),
            Event::End(_) => current = None,
            Event::Text(t) => {
                let text = t.xml10_content();
                let slot = match current.as_deref() {
                    Some("title") => &mut meta.title,
                    Some("creator") => &mut meta.author,
                    _ => return Ok(()),
                };
                let text: String = text.trim().chars().take(MAX_FIELD).collect();
                if !text.is_empty() {
                    *slot = Some(text);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(meta)
}
