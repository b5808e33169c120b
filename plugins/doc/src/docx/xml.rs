//! XML reading shared by the parts: well-formedness, namespaces, attributes.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use super::{NS_MC, NS_W, NS_W_STRICT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ns {
    W,
    Mc,
    Other,
}

pub(crate) fn ns_of(r: &ResolveResult<'_>) -> Ns {
    match r {
        ResolveResult::Bound(ns) => {
            let uri: &str = ns.as_ref();
            if uri == NS_W || uri == NS_W_STRICT {
                Ns::W
            } else if uri == NS_MC {
                Ns::Mc
            } else {
                Ns::Other
            }
        }
        _ => Ns::Other,
    }
}

/// The value of the attribute with this local name (any prefix).
pub(crate) fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    for a in e.attributes().with_checks(false).flatten() {
        let key = a.key.local_name();
        let k: &str = key.as_ref();
        if k == local {
            return a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned());
        }
    }
    None
}

pub(crate) fn local(e: &BytesStart<'_>) -> String {
    let name = e.local_name();
    let s: &str = name.as_ref();
    s.to_string()
}

/// Line and column (from 1; the column in characters) of a byte offset.
pub(crate) fn line_col(xml: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(xml.len());
    while !xml.is_char_boundary(at) {
        at -= 1;
    }
    let before = &xml[..at];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, column)
}

/// The `unsupported-input` message for XML that is not well-formed.
pub(crate) fn malformed(part: &str, xml: &str, at: usize, what: impl std::fmt::Display) -> String {
    let (line, column) = line_col(xml, at);
    format!("malformed XML in {part} at line {line}, column {column}: {what}")
}

/// Read a part as one well-formed XML document, handing each event to `f`
/// with its element's namespace. Whatever is not well-formed stops the
/// reading with an error naming the part and the line and column: a syntax
/// error, an end tag that does not match, an element still open at the end
/// (a truncated part), no root element or more than one, text outside the
/// root, an undefined entity, a malformed or repeated attribute, or an
/// undeclared namespace prefix.
pub(crate) fn read_xml<'x>(
    part: &str,
    xml: &'x str,
    mut f: impl FnMut(&ResolveResult<'_>, Event<'x>) -> Result<(), String>,
) -> Result<(), String> {
    let mut reader = NsReader::from_str(xml);
    // Open elements: name and where each starts.
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut root_done = false;
    loop {
        let pos = reader.buffer_position() as usize;
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(r) => r,
            Err(e) => {
                let mut what = e.to_string();
                if what.contains("end of input") {
                    what.push_str(" (the part is cut short or damaged)");
                }
                return Err(malformed(part, xml, reader.error_position() as usize, what));
            }
        };
        let outside = open.is_empty();
        match &event {
            Event::Eof => {
                if let Some((name, at)) = open.last() {
                    let (line, column) = line_col(xml, *at);
                    let what = format!(
                        "the part ends inside the element `{name}` opened at line {line}, column {column} (it is cut short or damaged)"
                    );
                    return Err(malformed(part, xml, xml.len(), what));
                }
                if !root_done {
                    return Err(malformed(part, xml, xml.len(), "no root element (the part is empty)"));
                }
                return Ok(());
            }
            Event::Start(e) | Event::Empty(e) => {
                let name: String = e.name().as_ref().to_owned();
                if outside && root_done {
                    return Err(malformed(part, xml, pos, format!("a second root element `{name}`")));
                }
                if let ResolveResult::Unknown(prefix) = &resolved {
                    return Err(malformed(
                        part,
                        xml,
                        pos,
                        format!("undeclared namespace prefix `{prefix}` in `{name}`"),
                    ));
                }
                for a in e.attributes() {
                    if let Err(err) = a {
                        return Err(malformed(part, xml, pos, format!("in the attributes of `{name}`: {err}")));
                    }
                }
                if matches!(event, Event::Start(_)) {
                    open.push((name, pos));
                } else if outside {
                    root_done = true;
                }
            }
            Event::End(_) => {
                open.pop();
                if open.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) if outside && !t.chars().all(|c| c.is_ascii_whitespace()) => {
                return Err(malformed(part, xml, pos, "text outside the root element"));
            }
            Event::CData(_) if outside => return Err(malformed(part, xml, pos, "CDATA outside the root element")),
            Event::GeneralRef(r) => {
                if outside {
                    return Err(malformed(part, xml, pos, "text outside the root element"));
                }
                let name = r.xml10_content();
                if reference(&name).is_none() {
                    return Err(malformed(
                        part,
                        xml,
                        pos,
                        format!("undefined entity or bad character reference `&{name};`"),
                    ));
                }
            }
            _ => {}
        }
        f(&resolved, event)?;
    }
}

/// `w:val` of an on/off property: absent or true-ish means on.
pub(crate) fn on_off(e: &BytesStart<'_>) -> bool {
    !matches!(attr(e, "val").as_deref(), Some("0" | "false" | "off" | "none"))
}

/// Text of a general reference (`&amp;`, `&#169;`): quick-xml reports them apart from text.
pub(crate) fn reference(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            char::from_u32(code).filter(|c| *c != '\0')
        }
    }
}

/// Walk the simple parts (styles, numbering, rels) element by element: only
/// names, attributes and nesting matter there.
pub(crate) fn walk(part: &str, xml: &str, mut f: impl FnMut(&[String], &BytesStart<'_>)) -> Result<(), String> {
    let mut path: Vec<String> = Vec::new();
    read_xml(part, xml, |_, event| {
        match event {
            Event::Start(e) => {
                f(&path, &e);
                path.push(local(&e));
            }
            Event::Empty(e) => f(&path, &e),
            Event::End(_) => {
                path.pop();
            }
            _ => {}
        }
        Ok(())
    })
}
