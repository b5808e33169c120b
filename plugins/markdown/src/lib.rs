//! `markdown`: CommonMark, with the GFM tables, task lists and strikethrough
//! extensions, to HTML (extension `html`).
//!
//! `markdown` writes an HTML fragment; `markdown/page_1` writes a complete
//! HTML5 page whose `<title>` is the text of the first heading (or, without a
//! heading, the file name of the object key). As in CommonMark, raw HTML in the
//! source is passed through.

use std::io::Write;

use kiln_plugin_sdk::{Action, Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

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

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS | Options::ENABLE_STRIKETHROUGH
}

/// The plain text of the first heading, whitespace collapsed.
fn first_heading(source: &str) -> Option<String> {
    let mut text = String::new();
    let mut inside = false;
    for event in Parser::new_ext(source, options()) {
        match event {
            Event::Start(Tag::Heading { .. }) => inside = true,
            Event::End(TagEnd::Heading(_)) => {
                let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
                if !collapsed.is_empty() {
                    return Some(collapsed);
                }
                inside = false;
                text.clear();
            }
            Event::Text(t) | Event::Code(t) if inside => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak if inside => text.push(' '),
            _ => {}
        }
    }
    None
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
    let mut body = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut body, Parser::new_ext(source, options()));
    if !page {
        return body;
    }
    let title = first_heading(source).unwrap_or_else(|| key.rsplit('/').next().unwrap_or(key).to_string());
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n</head>\n<body>\n{}</body>\n</html>\n",
        escape_html(&title),
        body
    )
}

impl Processor for Markdown {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "markdown",
            env!("CARGO_PKG_VERSION"),
            "CommonMark with GFM tables, task lists and strikethrough to HTML",
        )
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
        assert!(h.contains("<th style=\"text-align: center\">b</th>"), "{h}");
        assert!(h.contains("<td>1</td>") && h.contains("<td style=\"text-align: center\">2</td>"), "{h}");
        assert!(h.contains("<input disabled=\"\" type=\"checkbox\" checked=\"\"/>"), "{h}");
        assert!(h.contains("<input disabled=\"\" type=\"checkbox\"/>"), "{h}");
        assert!(h.contains("<del>gone</del>"), "{h}");
    }

    #[test]
    fn page_wraps_with_escaped_title_from_first_heading() {
        let h = html("page_1", "Intro text\n\n## Fish & \"Chips\" < 3 `v2`\n\n# Later\n");
        assert!(h.starts_with("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">"), "{h}");
        assert!(h.contains("<title>Fish &amp; &quot;Chips&quot; &lt; 3 v2</title>"), "{h}");
        assert!(h.contains("<body>\n<p>Intro text</p>\n<h2>Fish &amp; \"Chips\" &lt; 3 <code>v2</code></h2>"), "{h}");
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
