//! `kiln plugin new NAME --lang rust|js|python`: a working plugin project of
//! contract 0.2.0 (the SDK, a `process` that upper-cases, copies or counts,
//! a test, a README with the build command), from templates embedded here.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

/// The contract the projects target, and the JavaScript SDK they carry.
const WIT: &str = include_str!("../../../wit/0.2.0/kiln-plugin.wit");
const JS_SDK: [(&str, &str); 3] = [
    ("lib/kiln.js", include_str!("../../../plugin-sdk/js/kiln.js")),
    ("lib/style.js", include_str!("../../../plugin-sdk/js/style.js")),
    ("lib/testing.js", include_str!("../../../plugin-sdk/js/testing.js")),
];

fn templates(lang: Lang) -> Vec<(&'static str, &'static str)> {
    macro_rules! t {
        ($path:literal) => {
            ($path, include_str!(concat!("../../templates/plugin-new/", $path)))
        };
    }
    match lang {
        Lang::Rust => vec![t!("rust/Cargo.toml"), t!("rust/src/lib.rs"), t!("rust/README.md")],
        Lang::Js => vec![
            t!("js/package.json"),
            t!("js/bundle.config.js"),
            t!("js/src/plugin.js"),
            t!("js/test/plugin.test.js"),
            t!("js/README.md"),
        ],
        Lang::Python => vec![t!("python/app.py"), t!("python/README.md")],
    }
}

/// The SDK a Rust project depends on: the one beside the sources this binary was built from.
fn default_sdk() -> Option<PathBuf> {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk")).canonicalize().ok()
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!("plugin name `{name}`: 1 to 40 lowercase letters, digits or `-`, starting with a letter");
    }
    Ok(())
}

pub fn run(name: &str, lang: Lang, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<()> {
    check_name(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: choose another --dir", dir.display());
    }
    let sdk = match lang {
        Lang::Rust => {
            let sdk = sdk.or_else(default_sdk).context(
                "the Rust SDK (plugin-sdk/ of the Kiln repository) was not found beside this binary's sources: pass --sdk PATH",
            )?;
            let sdk = sdk.canonicalize().with_context(|| format!("--sdk {}", sdk.display()))?;
            if !sdk.join("Cargo.toml").is_file() {
                bail!("--sdk {}: no Cargo.toml there (point it at plugin-sdk/ of the Kiln repository)", sdk.display());
            }
            sdk.display().to_string()
        }
        _ => String::new(),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name).replace("{{crate}}", &name.replace('-', "_")).replace("{{sdk}}", &sdk)
    };
    let mut files: Vec<(String, String)> = templates(lang)
        .into_iter()
        .map(|(path, text)| (path.split_once('/').map_or(path, |(_, rest)| rest).to_string(), fill(text)))
        .collect();
    if lang != Lang::Rust {
        files.push(("wit/kiln-plugin.wit".into(), WIT.to_string()));
    }
    if lang == Lang::Js {
        files.extend(JS_SDK.iter().map(|(p, t)| (p.to_string(), t.to_string())));
    }
    for (path, text) in &files {
        let to = dir.join(path);
        std::fs::create_dir_all(to.parent().expect("a file in the project"))
            .with_context(|| format!("creating {}", to.display()))?;
        std::fs::write(&to, text).with_context(|| format!("writing {}", to.display()))?;
    }
    println!("created {} ({lang:?} plugin `{name}`, contract 0.2.0): {} files", dir.display(), files.len());
    let next = match lang {
        Lang::Rust => format!("cd {} && cargo build --release --target wasm32-wasip2", dir.display()),
        Lang::Js => format!("cd {} && npm install && npm run build", dir.display()),
        Lang::Python => format!(
            "cd {} && componentize-py -d wit -w kiln:plugin/processor componentize --stub-wasi app -o {name}.wasm",
            dir.display()
        ),
    };
    println!("next: {next}  (then `kiln process`, as its README shows)");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_plain() {
        assert!(super::check_name("my-style2").is_ok());
        for bad in ["", "My", "2x", "a_b", "a/b", &"x".repeat(41)] {
            assert!(super::check_name(bad).is_err(), "{bad}");
        }
    }
}
