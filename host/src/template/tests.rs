//! The template's unit tests: a case per variable, path rule and error, so
//! the file is long (over 500 lines) and each case short.

use super::render::Civil;
use super::*;

/// 2024-06-01T12:34:56Z (`date -u -d @1717245296`).
const MODIFIED: i64 = 1_717_245_296;
/// 2024-02-29T12:34:56Z.
const TASK: i64 = 1_709_210_096;

fn no_tags() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn tags() -> BTreeMap<String, String> {
    [("owner", "ana"), ("run-1", "r1")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn vars<'a>(key: &'a str, tags: &'a BTreeMap<String, String>) -> Vars<'a> {
    Vars {
        bucket: "media",
        key,
        etag: Some("\"d41d8cd9\""),
        last_modified: Some(MODIFIED),
        task_time: TASK,
        index: 3,
        autoext: Some("webp"),
        jobid: "job-42",
        tags,
        outputs: &[],
    }
}

fn render(template: &str, key: &str) -> String {
    let t = tags();
    Template::parse(template).unwrap().render(&vars(key, &t)).unwrap()
}

fn render_err(template: &str, v: &Vars) -> TemplateError {
    Template::parse(template).unwrap().render(v).unwrap_err()
}

fn ctx<'a>(input: &'a str, output: &'a str, prefix: &'a str, tags: &'a BTreeMap<String, String>) -> RuleContext<'a> {
    RuleContext {
        input_bucket: input,
        output_bucket: output,
        input_prefix: prefix,
        tags,
        fixed_selection: false,
        name_suffixes: &[],
        output_exts: &[],
        output_variables: &[],
    }
}

#[test]
fn output_variables_are_checked_at_creation_and_at_render() {
    let t = tags();
    let declared = ["page".to_string()];
    let rules = RuleContext { output_variables: &declared, ..ctx("docs", "pages", "", &t) };
    let template = Template::parse("{barename}-{page}.{autoext}").unwrap();
    template.check_rules(&rules).unwrap();
    // A name neither the template's nor the plugin's: refused at creation, naming both lists.
    let typo = Template::parse("{barname}-{page}.png").unwrap();
    let err = typo.check_rules(&rules).unwrap_err();
    assert_eq!(err.rule(), "undeclared-variable");
    let msg = err.to_string();
    assert!(msg.contains("`{barname}` is neither a template variable") && msg.contains("declares `{page}`"), "{msg}");
    let undeclared = Template::parse("{barename}-{page}.png").unwrap();
    let none = RuleContext { output_variables: &[], ..rules };
    assert!(undeclared.check_rules(&none).unwrap_err().to_string().contains("it declares none"));
    // At render: the plugin's value, checked as one key segment.
    let set = [("page".to_string(), "3".to_string())];
    let v = Vars { outputs: &set, ..vars("reports/q1.docx", &t) };
    assert_eq!(template.render(&v).unwrap(), "q1-3.webp");
    for (bad, rule) in [("a/b", KeyRule::Slash), ("..", KeyRule::DotSegment("..".into())), ("", KeyRule::Empty)] {
        let set = [("page".to_string(), bad.to_string())];
        let err = template.render(&Vars { outputs: &set, ..vars("q1.docx", &t) }).unwrap_err();
        assert!(err.is_render_error(), "{err}");
        assert_eq!(
            err,
            TemplateError::BadVariableValue {
                template: template.as_str().into(),
                name: "page".into(),
                value: bad.into(),
                rule
            }
        );
    }
    let err = template.render(&vars("q1.docx", &t)).unwrap_err();
    assert_eq!(err.rule(), "missing-variable");
    assert!(err.to_string().contains("the plugin did not set it for output 3"), "{err}");
}

fn check(template: &str, prefix: &str) -> Result<(), TemplateError> {
    let t = tags();
    Template::parse(template).unwrap().check_rules(&ctx("media", "media", prefix, &t))
}

fn check_other_bucket(template: &str) -> Result<(), TemplateError> {
    let t = tags();
    Template::parse(template).unwrap().check_rules(&ctx("media", "out", "", &t))
}

// --- rendering ---

#[test]
fn renders_every_variable() {
    let key = "photos/2024/cat.jpg";
    assert_eq!(render("{bucket}", key), "media");
    assert_eq!(render("{key}", key), "photos/2024/cat.jpg");
    assert_eq!(render("{dirname}", key), "photos/2024");
    assert_eq!(render("{basename}", key), "cat.jpg");
    assert_eq!(render("{barename}", key), "cat");
    assert_eq!(render("{ext}", key), "jpg");
    assert_eq!(render("{autoext}", key), "webp");
    assert_eq!(render("{year}-{mon}-{day}T{hour}:{min}:{sec}", key), "2024-06-01T12:34:56");
    assert_eq!(render("{t_year}-{t_mon}-{t_day}T{t_hour}:{t_min}:{t_sec}", key), "2024-02-29T12:34:56");
    assert_eq!(render("{index}", key), "3");
    assert_eq!(render("{tags.owner}/{tags.run-1}", key), "ana/r1");
    assert_eq!(render("{jobid}", key), "job-42");
    assert_eq!(render("{etag}", key), "d41d8cd9");
    assert_eq!(render("out/{bucket}/{dirname}/{barename}-{index}.{autoext}", key), "out/media/photos/2024/cat-3.webp");
}

#[test]
fn file_name_parts() {
    assert_eq!(split_key("a/b/archive.tar.gz"), ("a/b", "archive.tar.gz", "archive.tar", "gz"));
    assert_eq!(split_key("cat.jpg"), ("", "cat.jpg", "cat", "jpg"));
    assert_eq!(split_key("dir/.bashrc"), ("dir", ".bashrc", ".bashrc", ""));
    assert_eq!(split_key("dir/notes."), ("dir", "notes.", "notes.", ""));
    assert_eq!(split_key("README"), ("", "README", "README", ""));
    assert_eq!(split_key("a.b/c"), ("a.b", "c", "c", ""));
}

#[test]
fn object_time_falls_back_to_task_time() {
    let t = no_tags();
    let mut v = vars("cat.jpg", &t);
    v.last_modified = None;
    let key = Template::parse("{year}/{mon}/{day}/{hour}{min}{sec}-{basename}").unwrap().render(&v).unwrap();
    assert_eq!(key, "2024/02/29/123456-cat.jpg");
}

#[test]
fn autoext_falls_back_to_source_ext_and_strips_a_dot() {
    let t = no_tags();
    let tpl = Template::parse("out/{barename}.{autoext}").unwrap();
    let mut v = vars("a/cat.jpg", &t);
    v.autoext = None;
    assert_eq!(tpl.render(&v).unwrap(), "out/cat.jpg");
    v.autoext = Some(".png");
    assert_eq!(tpl.render(&v).unwrap(), "out/cat.png");
    v.autoext = Some("tar.gz");
    assert_eq!(tpl.render(&v).unwrap(), "out/cat.tar.gz");
}

#[test]
fn autoext_from_the_plugin_is_checked() {
    let t = no_tags();
    let long = "x".repeat(MAX_EXT_LEN + 1);
    for bad in ["png/../../x", "a/b", "..", "a..b", "x y", "a.", long.as_str()] {
        let mut v = vars("cat.jpg", &t);
        v.autoext = Some(bad);
        let err = render_err("out/{barename}.{autoext}", &v);
        assert_eq!(err.rule(), "bad-extension", "{bad}");
        assert!(err.to_string().contains("the plugin declared the extension"), "{err}");
        assert!(err.is_render_error());
    }
}

#[test]
fn etag_quotes_and_weak_prefix_are_stripped() {
    let t = no_tags();
    let tpl = Template::parse("e/{etag}").unwrap();
    let mut v = vars("cat.jpg", &t);
    for (given, want) in [("\"abc\"", "e/abc"), ("W/\"abc\"", "e/abc"), ("abc-3", "e/abc-3")] {
        v.etag = Some(given);
        assert_eq!(tpl.render(&v).unwrap(), want);
    }
}

#[test]
fn missing_etag_is_a_render_error() {
    let t = no_tags();
    for etag in [None, Some("\"\""), Some("")] {
        let mut v = vars("cat.jpg", &t);
        v.etag = etag;
        let err = render_err("e/{etag}", &v);
        assert_eq!(err.rule(), "no-etag");
        assert_eq!(err.to_string(), "template `e/{etag}` uses `{etag}`, but the source `cat.jpg` has no ETag");
    }
}

#[test]
fn escapes_are_literal_braces() {
    assert_eq!(render("a{{b}}/{{{basename}}}", "x/cat.jpg"), "a{b}/{cat.jpg}");
    let t = Template::parse("{{key}}/{key}").unwrap();
    assert!(t.uses("key"));
    assert_eq!(t.literal_head(), "{key}/");
    assert_eq!(render("{{key}}/{key}", "cat.jpg"), "{key}/cat.jpg");
}

#[test]
fn literal_head_and_uses() {
    let t = Template::parse("thumbs/{{x}}/{dirname}/{tags.owner}.{ext}").unwrap();
    assert_eq!(t.literal_head(), "thumbs/{x}/");
    assert_eq!(t.as_str(), "thumbs/{{x}}/{dirname}/{tags.owner}.{ext}");
    assert!(t.uses("dirname") && t.uses("{ext}") && t.uses("tags.owner") && t.uses("tags"));
    assert!(!t.uses("key") && !t.uses("tags.run") && !t.uses("x"));
    assert_eq!(t.tag_names().collect::<Vec<_>>(), ["owner"]);
    assert_eq!(Template::parse("{key}").unwrap().literal_head(), "");
}

// --- swallowing ---

#[test]
fn empty_dirname_swallows_the_following_slash() {
    let tpl = "thumbs/{dirname}/{barename}.jpg";
    assert_eq!(render(tpl, "cat.png"), "thumbs/cat.jpg");
    assert_eq!(render(tpl, "a/b/cat.png"), "thumbs/a/b/cat.jpg");
    assert_eq!(render("{dirname}/{basename}.txt", "cat.png"), "cat.png.txt");
    // Only a `/` right after it, and only one.
    assert_eq!(render("t/{dirname}-{basename}", "cat.png"), "t/-cat.png");
    let t = tags();
    let err = render_err("t/{dirname}//{basename}", &vars("cat.png", &t));
    assert_eq!(err.rule(), "invalid-key");
}

#[test]
fn empty_ext_swallows_the_preceding_dot() {
    assert_eq!(render("t/{barename}.{ext}", "a/README"), "t/README");
    assert_eq!(render("t/{barename}.{ext}", "a/cat.jpg"), "t/cat.jpg");
    assert_eq!(render("t/{barename}.small.{ext}", "a/.bashrc"), "t/.bashrc.small");
    // Not a dot that a variable wrote.
    assert_eq!(render("t/{basename}{ext}", "a/notes."), "t/notes.");
    let t = no_tags();
    let mut v = vars("a/cat.jpg", &t);
    v.autoext = Some("");
    let tpl = Template::parse("t/{barename}.{autoext}").unwrap();
    assert_eq!(tpl.render(&v).unwrap(), "t/cat");
    v.autoext = None;
    v.key = "a/README";
    assert_eq!(tpl.render(&v).unwrap(), "t/README");
}

#[test]
fn swallowing_both_at_once() {
    assert_eq!(render("{dirname}/{barename}.{ext}.gz", "README"), "README.gz");
}

// --- key rules at render ---

#[test]
fn rendered_keys_are_checked() {
    let t = no_tags();
    let cases = [
        ("t/{key}", "a/../b", "a `..` segment"),
        ("t/{key}", "a/./b", "a `.` segment"),
        ("t/{key}", "a//b", "empty segment"),
        ("t/{key}", "a/b/", "ends with `/`"),
        ("{key}-x", "/a", "starts with `/`"),
        ("t/{key}", "a\u{7}b", "control character U+0007 at byte 3"),
        ("{dirname}", "cat.jpg", "it is empty"),
        ("{tags.none}/{key}", "cat", "unknown tag"),
    ];
    for (tpl, key, want) in cases {
        let err = render_err(tpl, &vars(key, &t));
        assert!(err.to_string().contains(want), "{tpl} {key}: {err}");
    }
    let err = render_err("t/{key}", &vars("a/../b", &t));
    assert_eq!(
        err.to_string(),
        "template `t/{key}` rendered `t/a/../b` for source `a/../b`: \
         it has a `..` segment (key rule: no `.` or `..` segment)"
    );
    assert!(err.is_render_error());
}

#[test]
fn key_length_limit() {
    let t = no_tags();
    let tpl = Template::parse("t/{key}").unwrap();
    let ok = "k".repeat(MAX_KEY_LEN - 2);
    assert_eq!(tpl.render(&vars(&ok, &t)).unwrap().len(), MAX_KEY_LEN);
    let long = "k".repeat(MAX_KEY_LEN - 1);
    let err = tpl.render(&vars(&long, &t)).unwrap_err();
    let TemplateError::InvalidKey { rule, key, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*rule, KeyRule::TooLong { len: MAX_KEY_LEN + 1 });
    assert_eq!(key.len(), MAX_KEY_LEN + 1);
    let msg = err.to_string();
    assert!(msg.contains("is 1025 bytes long (key rule: at most 1024 bytes)"), "{msg}");
    assert!(msg.len() < 600, "the message cuts the key: {msg}");
}

#[test]
fn check_key_rules() {
    assert_eq!(check_key("a/b.c"), Ok(()));
    assert_eq!(check_key("..a/b..c/.d"), Ok(()));
    assert_eq!(check_key(""), Err(KeyRule::Empty));
    assert_eq!(check_key("/a"), Err(KeyRule::LeadingSlash));
    assert_eq!(check_key("a/"), Err(KeyRule::TrailingSlash));
    assert_eq!(check_key("a//b"), Err(KeyRule::EmptySegment));
    assert_eq!(check_key("."), Err(KeyRule::DotSegment(".".into())));
    assert_eq!(check_key("a/.."), Err(KeyRule::DotSegment("..".into())));
    assert_eq!(check_key("a\nb"), Err(KeyRule::ControlChar { ch: '\n', at: 1 }));
    assert_eq!(check_key("a\u{85}"), Err(KeyRule::ControlChar { ch: '\u{85}', at: 1 }));
    assert_eq!(check_key(&"x".repeat(1025)), Err(KeyRule::TooLong { len: 1025 }));
}

// --- parse errors ---

#[test]
fn unknown_variable() {
    // A lowercase name may be a plugin's output variable (`check_rules` asks
    // the plugin); any other unknown name is refused as it is parsed.
    let err = Template::parse("thumbs/{Nope}.jpg").unwrap_err();
    assert_eq!(
        err.to_string(),
        "template `thumbs/{Nope}.jpg`: unknown variable `{Nope}` at byte 7; known variables: bucket, key, \
         dirname, basename, barename, ext, autoext, year, mon, day, hour, min, sec, t_year, t_mon, t_day, \
         t_hour, t_min, t_sec, index, jobid, etag, tags.NAME"
    );
    assert_eq!(err.rule(), "unknown-variable");
    // Names are exact: no spaces, no case folding.
    assert_eq!(Template::parse("a/{ key }").unwrap_err().rule(), "unknown-variable");
    assert_eq!(Template::parse("a/{Key}").unwrap_err().rule(), "unknown-variable");
    assert_eq!(Template::parse("a/{tags}").unwrap_err().rule(), "unknown-variable");
}

#[test]
fn parse_errors() {
    let cases = [
        ("", "empty", "the output template is empty"),
        (
            "a/{key",
            "unclosed-brace",
            "template `a/{key`: the `{` at byte 2 is not closed; write `{{` for a literal `{`",
        ),
        ("a/{x{key}", "unclosed-brace", "the `{` at byte 2 is not closed"),
        (
            "a/key}",
            "unmatched-close",
            "template `a/key}`: the `}` at byte 5 closes nothing; write `}}` for a literal `}`",
        ),
        ("a/{key}}x", "unmatched-close", "the `}` at byte 7 closes nothing"),
        ("a/{}{key}", "empty-variable", "template `a/{}{key}`: `{}` at byte 2 names no variable"),
        ("a/{tags.}", "bad-tag-name", "bad tag name in `{tags.}` at byte 2"),
        ("a/{tags.a b}", "bad-tag-name", "bad tag name in `{tags.a b}`"),
        ("a/{tags.a/b}", "bad-tag-name", "bad tag name"),
    ];
    for (tpl, rule, msg) in cases {
        let err = Template::parse(tpl).unwrap_err();
        assert_eq!(err.rule(), rule, "{tpl}: {err}");
        assert!(err.to_string().contains(msg), "{tpl}: {err}");
        assert!(!err.is_render_error());
    }
}

#[test]
fn parse_keeps_non_ascii_text() {
    assert_eq!(render("фото/{barename}-é.{ext}", "a/猫.jpg"), "фото/猫-é.jpg");
    let err = Template::parse("é/{Nope}").unwrap_err();
    assert!(err.to_string().contains("at byte 3"), "{err}");
}

// --- path rules ---

#[test]
fn good_templates_pass() {
    check("thumbs/{dirname}/{barename}.{autoext}", "photos/").unwrap();
    check("thumbs/{key}", "photos/").unwrap();
    check("photos-thumbs/{key}", "photos/").unwrap();
    check("out/{tags.owner}/{t_year}/{barename}-{index}.{autoext}", "in/").unwrap();
    check_other_bucket("{key}").unwrap();
    check_other_bucket("{dirname}/{barename}.{autoext}").unwrap();
    check_other_bucket("x").unwrap_err();
}

#[test]
fn rule_unknown_tag() {
    let err = check("out/{tags.nope}/{key}", "in/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "template `out/{tags.nope}/{key}`: unknown tag `{tags.nope}`; the job's tags are: owner, run-1"
    );
    let none = no_tags();
    let err = Template::parse("out/{tags.x}/{key}").unwrap().check_rules(&ctx("a", "b", "", &none)).unwrap_err();
    assert!(err.to_string().ends_with("the job's tags are: (none)"), "{err}");
}

#[test]
fn rule_no_trailing_slash() {
    let err = check_other_bucket("out/{dirname}/").unwrap_err();
    assert_eq!(err.rule(), "trailing-slash");
    assert_eq!(
        err.to_string(),
        "template `out/{dirname}/`: ends with `/` (path rule: the output path names an object, so it does not end with `/`)"
    );
}

#[test]
fn rule_file_name_has_a_variable() {
    for (tpl, file_name) in [("out/{key}/thumb.jpg", "thumb.jpg"), ("static", "static"), ("{{key}}/{{x}}", "{{x}}")] {
        let err = check_other_bucket(tpl).unwrap_err();
        assert_eq!(err.rule(), "file-name-without-variable", "{tpl}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("its file name `{file_name}` has no variable")), "{msg}");
        assert!(msg.contains("path rule: the file name contains at least one variable"), "{msg}");
    }
    check_other_bucket("{key}").unwrap();
    check_other_bucket("out/thumb-{index}.jpg").unwrap();
}

#[test]
fn rule_literal_text_keeps_the_key_rules() {
    let long = format!("{}/{{key}}", "x".repeat(MAX_KEY_LEN + 1));
    let cases: [(&str, KeyRule); 7] = [
        ("/out/{key}", KeyRule::LeadingSlash),
        ("out//{key}", KeyRule::EmptySegment),
        ("{dirname}//{key}", KeyRule::EmptySegment),
        ("out/../{key}", KeyRule::DotSegment("..".into())),
        ("../{key}", KeyRule::DotSegment("..".into())),
        ("out/./{key}", KeyRule::DotSegment(".".into())),
        ("out/\t/{key}", KeyRule::ControlChar { ch: '\t', at: 4 }),
    ];
    for (tpl, want) in cases {
        let err = check_other_bucket(tpl).unwrap_err();
        assert_eq!(err, TemplateError::InvalidLiteral { template: tpl.into(), rule: want }, "{tpl}");
        assert!(
            err.to_string().starts_with(&format!("template `{tpl}`: every key it renders would break a key rule: it "))
        );
    }
    assert_eq!(check_other_bucket(&long).unwrap_err().rule(), "invalid-literal");
    // Dots next to a variable are fine: `..{key}` is not a `..` segment.
    check_other_bucket("out/..{key}").unwrap();
    check_other_bucket("out/{dirname}/./x{key}").unwrap_err();
    check_other_bucket("out/.{ext}/{key}").unwrap();
}

#[test]
fn rule_no_overwriting_the_source() {
    for tpl in ["{key}", "{dirname}/{basename}", "{dirname}/{barename}.{ext}", "{dirname}/{barename}.{autoext}"] {
        let err = check(tpl, "photos/").unwrap_err();
        assert_eq!(err.rule(), "overwrites-source", "{tpl}");
        assert_eq!(
            err.to_string(),
            format!(
                "template `{tpl}`: renders `photos/cat.jpg` to itself, so it would overwrite its source \
                 (path rule: in the same bucket, a template cannot render a source key to itself)"
            )
        );
    }
    // A prefix without a final `/` still gives keys under it.
    let err = check("{key}", "photos").unwrap_err();
    assert!(err.to_string().contains("renders `photos/cat.jpg` to itself"), "{err}");
    // Whole bucket.
    let err = check("{dirname}/{barename}.{autoext}", "").unwrap_err();
    assert!(err.to_string().contains("renders `cat.jpg` to itself"), "{err}");
    // Another bucket is fine.
    check_other_bucket("{key}").unwrap();
}

#[test]
fn rule_no_recursion() {
    // The input prefix inside the output folder: every source is an output's place.
    let err = check("photos/{basename}-small.{ext}", "photos/2024/").unwrap_err();
    assert_eq!(err.rule(), "recursion");
    assert_eq!(
        err.to_string(),
        "template `photos/{basename}-small.{ext}`: its outputs start with `photos/`, which overlaps the input \
         prefix `photos/2024/`, so outputs could be selected as inputs of bucket `media` and processed again \
         (path rule: in the same bucket, outputs stay out of the selection). Start the template with a folder \
         outside `photos/2024/`, write to another bucket, or select with a suffix filter (`--suffix`) that the \
         outputs' names cannot end with (a template ending in a fixed extension, or in `.{autoext}` with a \
         plugin that declares what it writes)"
    );
    // A head without a folder: `photos` also lists `photos-thumbs/`.
    assert_eq!(check("photos-{key}", "photos").unwrap_err().rule(), "recursion");
    // The input prefix inside the head's reach: `{key}.thumb.jpg` writes
    // `photos/cat.jpg.thumb.jpg`; the message no longer quotes an empty head.
    let err = check("{key}.thumb.jpg", "photos/").unwrap_err();
    assert_eq!(err.rule(), "recursion");
    assert!(
        err.to_string().contains("it starts with a variable, so its outputs can land anywhere, `photos/` included"),
        "{err}"
    );
    // And this one can overwrite its source, when the task runs in 2024.
    let err = check("photos/{t_year}/{basename}", "photos/2024/").unwrap_err();
    assert!(err.to_string().contains("renders `photos/2024/cat.jpg` to itself"), "{err}");
    // An empty `{ext}` swallowing the head's final dot is accounted for.
    assert_eq!(check("photos.{ext}/{key}", "photos/").unwrap_err().rule(), "recursion");
    // An output folder beside or inside the selection: the listing skips it.
    check("thumbs/{key}", "photos/").unwrap();
    check("thumbs/{key}", "").unwrap();
    check("photos/thumbs/{basename}", "photos/").unwrap();
    // Conservative: this one could not recurse, but the selection lies inside its head.
    assert_eq!(check("photos/{t_year}-thumbs/{basename}", "photos/2024/").unwrap_err().rule(), "recursion");
    check_other_bucket("thumbs/{key}").unwrap();
}

#[test]
fn a_suffix_filter_that_no_output_can_pass_proves_there_is_no_recursion() {
    let t = tags();
    let with = |template: &str, prefix: &str, suffixes: &[&str], exts: &[&str]| {
        let suffixes: Vec<String> = suffixes.iter().map(|s| s.to_string()).collect();
        let exts: Vec<String> = exts.iter().map(|s| s.to_string()).collect();
        let mut c = ctx("media", "media", prefix, &t);
        c.name_suffixes = &suffixes;
        c.output_exts = &exts;
        Template::parse(template).unwrap().check_rules(&c).map(|_| ()).map_err(|e| e.rule())
    };
    // A fixed extension that no suffix matches.
    assert_eq!(with("{dirname}/{barename}-small.webp", "trip-1/", &[".jpg"], &[]), Ok(()));
    // `.{autoext}` with the plugin's declared extensions.
    assert_eq!(with("{dirname}/{barename}-small.{autoext}", "trip-1/", &[".jpg", ".png"], &["webp", "avif"]), Ok(()));
    // The plugin may write `jpg`: an output could be selected again.
    assert_eq!(with("{dirname}/{barename}-small.{autoext}", "trip-1/", &[".jpg"], &["jpg", "webp"]), Err("recursion"));
    // Nothing declared, or no filter: nothing is proved.
    assert_eq!(with("{dirname}/{barename}-small.{autoext}", "trip-1/", &[".jpg"], &[]), Err("recursion"));
    assert_eq!(with("{dirname}/{barename}-small.webp", "trip-1/", &[], &[]), Err("recursion"));
    // A suffix longer than the ending may still end an output (`x-small.webp` ends in `small.webp`).
    assert_eq!(with("{dirname}/{barename}-small.webp", "trip-1/", &["small.webp"], &[]), Err("recursion"));
    assert_eq!(with("{dirname}/{barename}.webp", "trip-1/", &["-x.webp"], &[]), Err("recursion"));
}

// --- serde and traits ---

#[test]
fn serde_round_trip_parses() {
    let t: Template = serde_json::from_str("\"thumbs/{key}\"").unwrap();
    assert_eq!(t.as_str(), "thumbs/{key}");
    assert_eq!(serde_json::to_string(&t).unwrap(), "\"thumbs/{key}\"");
    let err = serde_json::from_str::<Template>("\"thumbs/{Nope}\"").unwrap_err();
    assert!(err.to_string().contains("unknown variable `{Nope}`"), "{err}");
    assert_eq!("a/{key}".parse::<Template>().unwrap().to_string(), "a/{key}");
}

// --- dates ---

#[test]
fn civil_known_dates() {
    let c = |t| {
        let c = Civil::from_unix(t);
        (c.year, c.mon, c.day, c.hour, c.min, c.sec)
    };
    assert_eq!(c(0), (1970, 1, 1, 0, 0, 0));
    assert_eq!(c(-1), (1969, 12, 31, 23, 59, 59));
    assert_eq!(c(951_782_400), (2000, 2, 29, 0, 0, 0));
    assert_eq!(c(MODIFIED), (2024, 6, 1, 12, 34, 56));
    assert_eq!(c(TASK), (2024, 2, 29, 12, 34, 56));
    assert_eq!(c(253_402_300_799), (9999, 12, 31, 23, 59, 59));
    assert_eq!(c(-62_135_596_800), (1, 1, 1, 0, 0, 0));
    let mut out = String::new();
    Civil::from_unix(-62_135_596_800).write(TimeField::Year, &mut out);
    assert_eq!(out, "0001");
}

#[test]
fn a_manifest_selection_only_needs_a_fixed_head_in_the_same_bucket() {
    let t = tags();
    let fixed = |template: &str| {
        let mut c = ctx("media", "media", "", &t);
        c.fixed_selection = true;
        Template::parse(template).unwrap().check_rules(&c)
    };
    assert!(fixed("thumbs/{key}").is_ok(), "the whole bucket is listed in no manifest");
    assert_eq!(fixed("{dirname}/{barename}-s.{ext}").unwrap_err().rule(), "recursion");
    assert_eq!(fixed("{key}").unwrap_err().rule(), "overwrites-source");
}
