//! `markdown`: CommonMark with the GitHub Flavored Markdown extensions
//! (tables, task lists, strikethrough, extended autolinks and the disallowed
//! raw HTML filter) to HTML (extension `html`), by `comrak`, a port of
//! GitHub's cmark-gfm.
//!
//! `markdown` writes an HTML fragment; `markdown/page_1` writes a complete
//! HTML5 page whose `<title>` is the text of the first heading (or, without a
//! heading, the file name of the object key). As in CommonMark, raw HTML in the
//! source is passed through, but for the tags GFM filters (`<script>`,
//! `<style>`, `<title>`, `<textarea>`, `<xmp>`, `<iframe>`, `<noembed>`,
//! `<noframes>`, `<plaintext>`), whose `<` is written `&lt;`.

use std::io::Write;

use comrak::nodes::NodeValue;
use comrak::{Arena, Node, Options};
use kiln_plugin_sdk::{Action, Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError};

pub struct Markdown;

/// Largest source read: Markdown is parsed as a whole.
const MAX_INPUT: usize = 64 << 20;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Params {
    page: bool,
}

/// `page_1` / `page_0` parses as an action named `page_1`; `page,1` is accepted too.
fn parse(params: &str) -> Result<Params, StyleError> {
    let style = Style::parse(params)?;
    let mut p = Params::default();
    for action in &style.actions {
        let value = match action.name.split_once('_') {
            Some(("page", v)) => {
                action.expect_keys(&[], false)?;
                v.to_string()
            }
            None if action.name == "page" => page_value(action)?,
            _ => return Err(kiln_plugin_sdk::style::unknown_action(&action.name, &["page_0", "page_1"])),
        };
        p.page = match value.as_str() {
            "1" => true,
            "0" => false,
            other => return Err(action_invalid("page", other)),
        };
    }
    Ok(p)
}

fn page_value(action: &Action) -> Result<String, StyleError> {
    action.expect_keys(&[], true)?;
    let values: Vec<&str> = action.values().collect();
    match values.as_slice() {
        [] => Ok("1".into()),
        [v] => Ok(v.to_string()),
        [_, extra, ..] => Err(StyleError::UnexpectedValue { action: action.name.clone(), value: extra.to_string() }),
    }
}

fn action_invalid(key: &str, value: &str) -> StyleError {
    StyleError::InvalidValue {
        action: "page".into(),
        key: key.into(),
        value: value.into(),
        reason: "must be 0 or 1".into(),
    }
}

fn options() -> Options<'static> {
    let mut o = Options::default();
    o.extension.table = true;
    o.extension.tasklist = true;
    o.extension.strikethrough = true;
    o.extension.autolink = true;
    // Raw HTML passes through, as CommonMark specifies (less what `tagfilter` takes).
    o.render.r#unsafe = true;
    o
}

/// The plain text of the first heading, whitespace collapsed.
fn first_heading<'a>(root: Node<'a>) -> Option<String> {
    for node in root.descendants() {
        if !matches!(node.data().value, NodeValue::Heading(_)) {
            continue;
        }
        let mut text = String::new();
        for inner in node.descendants() {
            match &inner.data().value {
                NodeValue::Text(t) => text.push_str(t),
                NodeValue::Code(c) => text.push_str(&c.literal),
                NodeValue::SoftBreak | NodeValue::LineBreak => text.push(' '),
                _ => {}
            }
        }
        let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !collapsed.is_empty() {
            return Some(collapsed);
        }
    }
    None
}

/// GFM's disallowed raw HTML extension (cmark-gfm's `tagfilter`, which
/// comrak has dropped): in raw HTML, the `<` that opens or closes one of
/// these tags is written `&lt;`, so that the browser shows it as text.
const DISALLOWED: [&str; 9] =
    ["title", "textarea", "style", "xmp", "iframe", "noembed", "noframes", "script", "plaintext"];

/// Whether `html` starts with a disallowed tag: `<name` or `</name`, then
/// whitespace, `>` or `/>` (cmark-gfm's `is_tag`).
fn disallowed_tag(html: &[u8]) -> bool {
    let Some(rest) = html.strip_prefix(b"<") else { return false };
    let rest = rest.strip_prefix(b"/").unwrap_or(rest);
    DISALLOWED.iter().any(|name| {
        rest.len() > name.len()
            && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && match rest[name.len()] {
                b'>' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => true,
                b'/' => rest.get(name.len() + 1) == Some(&b'>'),
                _ => false,
            }
    })
}

/// `html` with the `<` of every disallowed tag written `&lt;`.
fn filter_tags(html: &str) -> Option<String> {
    let bytes = html.as_bytes();
    let hits: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b'<' && disallowed_tag(&bytes[i..])).collect();
    if hits.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(html.len() + 3 * hits.len());
    let mut from = 0;
    for at in hits {
        out.push_str(&html[from..at]);
        out.push_str("&lt;");
        from = at + 1;
    }
    out.push_str(&html[from..]);
    Some(out)
}

/// Apply the filter to the raw HTML of the document: every `<` of an HTML
/// block, and the tag an inline HTML node starts with.
fn tagfilter<'a>(root: Node<'a>) {
    for node in root.descendants() {
        let mut data = node.data_mut();
        match &mut data.value {
            NodeValue::HtmlBlock(block) => {
                if let Some(filtered) = filter_tags(&block.literal) {
                    block.literal = filtered;
                }
            }
            NodeValue::HtmlInline(html) if disallowed_tag(html.as_bytes()) => html.replace_range(..1, "&lt;"),
            _ => {}
        }
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Render `source` as an HTML fragment, or as a whole page titled after its first heading.
fn render(source: &str, page: bool, key: &str) -> String {
    let options = options();
    let arena = Arena::new();
    let root = comrak::parse_document(&arena, source, &options);
    tagfilter(root);
    let mut body = String::with_capacity(source.len() * 3 / 2);
    // Writing into a String cannot fail.
    let _ = comrak::format_html(root, &options, &mut body);
    if !page {
        return body;
    }
    let title = first_heading(root).unwrap_or_else(|| key.rsplit('/').next().unwrap_or(key).to_string());
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n</head>\n<body>\n{}</body>\n</html>\n",
        escape_html(&title),
        body
    )
}

impl Processor for Markdown {
    fn info() -> PluginInfo {
        PluginInfo::new("markdown", env!("CARGO_PKG_VERSION"), "CommonMark with the GFM extensions to HTML")
            .reads(&["md", "markdown", "txt"])
            .writes(&["html"])
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        parse(params).map(|_| ())
    }

    fn process(
        params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        let params = parse(params)?;
        let bytes = input.read_all(MAX_INPUT).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => ProcessError::unsupported(format!("Markdown source too large: {e}")),
            _ => ProcessError::failed(format!("reading the object: {e}")),
        })?;
        let source = std::str::from_utf8(&bytes).map_err(|e| {
            ProcessError::unsupported(format!(
                "the Markdown source is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ))
        })?;
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        let html = render(source, params.page, &object.key);
        let mut out = outputs.open(Some("html"))?;
        out.write_all(html.as_bytes())?;
        Ok(())
    }
}

kiln_plugin_sdk::export!(Markdown);

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_plugin_sdk::testing::{run, run_with};

    fn html(params: &str, md: &str) -> String {
        let out = run::<Markdown>(params, md.as_bytes()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].extension.as_deref(), Some("html"));
        String::from_utf8(out[0].bytes.clone()).unwrap()
    }

    #[test]
    fn commonmark_basics() {
        let h = html(
            "",
            "# Title\n\nSome *em* and **strong** and `code`.\n\n- a\n- b\n\n1. one\n2. two\n\n> quote\n\n```rust\nfn x() {}\n```\n",
        );
        assert!(h.starts_with("<h1>Title</h1>\n"), "{h}");
        assert!(h.contains("<p>Some <em>em</em> and <strong>strong</strong> and <code>code</code>.</p>"));
        assert!(h.contains("<ul>\n<li>a</li>\n<li>b</li>\n</ul>"));
        assert!(h.contains("<ol>\n<li>one</li>\n<li>two</li>\n</ol>"));
        assert!(h.contains("<blockquote>\n<p>quote</p>\n</blockquote>"));
        assert!(h.contains("<pre><code class=\"language-rust\">fn x() {}\n</code></pre>"));
        assert!(!h.contains("<html"), "a fragment by default");
    }

    #[test]
    fn gfm_tables_task_lists_strikethrough() {
        let h = html("", "| a | b |\n|---|:-:|\n| 1 | 2 |\n\n- [x] done\n- [ ] todo\n\n~~gone~~\n");
        assert!(h.contains("<table>") && h.contains("<thead>") && h.contains("<th>a</th>"), "{h}");
        assert!(h.contains("<th align=\"center\">b</th>"), "{h}");
        assert!(h.contains("<td>1</td>") && h.contains("<td align=\"center\">2</td>"), "{h}");
        assert!(h.contains("<li><input type=\"checkbox\" checked=\"\" disabled=\"\" /> done</li>"), "{h}");
        assert!(h.contains("<li><input type=\"checkbox\" disabled=\"\" /> todo</li>"), "{h}");
        assert!(h.contains("<del>gone</del>"), "{h}");
    }

    #[test]
    fn table_cells_carry_align_and_a_table_without_rows_has_no_tbody() {
        let h = html("", "| l | c | r | n |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |\n");
        assert_eq!(
            h,
            "<table>\n<thead>\n<tr>\n<th align=\"left\">l</th>\n<th align=\"center\">c</th>\n\
             <th align=\"right\">r</th>\n<th>n</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td align=\"left\">1</td>\n\
             <td align=\"center\">2</td>\n<td align=\"right\">3</td>\n<td>4</td>\n</tr>\n</tbody>\n</table>\n"
        );
        let h = html("", "| a | b |\n| --- | --- |\n");
        assert_eq!(h, "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n</table>\n");
    }

    #[test]
    fn extended_autolinks() {
        assert_eq!(
            html("", "Visit www.commonmark.org/help, https://example.com/a?b=c. or mail foo@bar.example.\n"),
            "<p>Visit <a href=\"http://www.commonmark.org/help\">www.commonmark.org/help</a>, \
             <a href=\"https://example.com/a?b=c\">https://example.com/a?b=c</a>. or mail \
             <a href=\"mailto:foo@bar.example\">foo@bar.example</a>.</p>\n"
        );
        // Trailing parentheses are balanced, and text inside code is no link.
        assert_eq!(
            html("", "(see www.google.com/search?q=Markup+(business))) `www.x.org`"),
            "<p>(see <a href=\"http://www.google.com/search?q=Markup+(business)\">www.google.com/search?q=Markup+(business)</a>)) \
             <code>www.x.org</code></p>\n"
        );
    }

    #[test]
    fn disallowed_raw_html_is_filtered() {
        // The GFM spec's example: the `<` of the filtered tags becomes `&lt;`, others pass.
        let h = html(
            "",
            "<strong> <title> <style> <em>\n\n<blockquote>\n  <xmp> is disallowed.  <XMP> is also disallowed.\n</blockquote>\n",
        );
        assert_eq!(
            h,
            "<p><strong> &lt;title> &lt;style> <em></p>\n<blockquote>\n  &lt;xmp> is disallowed.  &lt;XMP> is also disallowed.\n</blockquote>\n"
        );
        for tag in ["title", "textarea", "style", "xmp", "iframe", "noembed", "noframes", "script", "plaintext"] {
            let h = html("", &format!("<{tag}>x</{tag}>\n\na <{tag} id=\"1\"/> b </{tag}>\n"));
            assert!(!h.contains(&format!("<{tag}")) && !h.contains(&format!("</{tag}")), "{tag}: {h}");
            assert!(h.contains(&format!("&lt;{tag}>")) && h.contains(&format!("&lt;/{tag}>")), "{tag}: {h}");
        }
        // Raw HTML otherwise passes, and names that only start alike are not filtered.
        assert_eq!(
            html("", "<div class=\"x\">\n<titles>ok</titles>\n</div>\n"),
            "<div class=\"x\">\n<titles>ok</titles>\n</div>\n"
        );
    }

    #[test]
    fn quotes_in_text_are_escaped_as_commonmark_does() {
        assert_eq!(html("", "\"Hi\" & 'bye' <3\n"), "<p>&quot;Hi&quot; &amp; 'bye' &lt;3</p>\n");
    }

    #[test]
    fn page_wraps_with_escaped_title_from_first_heading() {
        let h = html("page_1", "Intro text\n\n## Fish & \"Chips\" < 3 `v2`\n\n# Later\n");
        assert!(h.starts_with("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">"), "{h}");
        assert!(h.contains("<title>Fish &amp; &quot;Chips&quot; &lt; 3 v2</title>"), "{h}");
        assert!(
            h.contains("<body>\n<p>Intro text</p>\n<h2>Fish &amp; &quot;Chips&quot; &lt; 3 <code>v2</code></h2>"),
            "{h}"
        );
        assert!(h.trim_end().ends_with("</body>\n</html>"));
        // Setext headings count too; `page,1` and `page` are the same as `page_1`.
        assert!(html("page,1", "Big\n===\n").contains("<title>Big</title>"));
        assert!(html("page", "# A\n").contains("<title>A</title>"));
        assert!(!html("page_0", "# A\n").contains("<title>"));
    }

    #[test]
    fn page_title_falls_back_to_the_file_name() {
        let obj = ObjectInfo { key: "docs/notes <1>.md".into(), ..Default::default() };
        let out = run_with::<Markdown>("page_1", &obj, &b"no heading here"[..]).unwrap();
        let h = String::from_utf8(out[0].bytes.clone()).unwrap();
        assert!(h.contains("<title>notes &lt;1&gt;.md</title>"), "{h}");
        // Empty input: a valid page with an empty body.
        let out = run_with::<Markdown>("page_1", &obj, &b""[..]).unwrap();
        assert!(String::from_utf8(out[0].bytes.clone()).unwrap().contains("<body>\n</body>"));
        assert_eq!(html("", ""), "");
    }

    #[test]
    fn invalid_utf8_is_unsupported_and_bom_is_dropped() {
        match run::<Markdown>("", b"ok \xff\xfe bad") {
            Err(ProcessError::UnsupportedInput(m)) => assert!(m.contains("UTF-8") && m.contains("offset 3"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(html("", "\u{feff}# T"), "<h1>T</h1>\n");
    }

    #[test]
    fn pathological_input_does_not_panic() {
        let deep = "> ".repeat(5000) + "x\n" + &"[".repeat(10000) + &"*a".repeat(10000) + &"|".repeat(1000);
        let h = html("page_1", &deep);
        assert!(h.contains("</html>"));
    }

    #[test]
    fn bad_params_are_refused() {
        let err = |p: &str| Markdown::validate(p).unwrap_err().to_string();
        assert!(err("page_2").contains("`page`") && err("page_2").contains("0 or 1"), "{}", err("page_2"));
        assert!(err("toc").contains("unknown action `toc`"));
        assert!(err("page_1,x_1").contains("unknown parameter `x`"));
        assert!(err("page,1,2").contains("unexpected value `2`"));
        assert!(matches!(run::<Markdown>("pages_1", b"x"), Err(ProcessError::InvalidParams(_))));
    }
}
