//! `kiln process`: run one style over one local file or stdin. The plugin
//! author's local loop, with the same runtime and limits as the daemon.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;

use super::local_files::{Destination, LocalTarget};
use crate::bundled;
use crate::runtime::{InputSource, Limits, ObjectMeta, RuntimeConfig, Task};

#[derive(Args)]
pub struct ProcessArgs {
    /// A bundled style, `NAME/params`, e.g. `image/resize,w_256/format,webp`.
    #[arg(long, conflicts_with = "plugin", required_unless_present = "plugin")]
    style: Option<String>,
    /// A plugin component file (`.wasm`) to run instead of a bundled one.
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// Parameters for `--plugin` (the part of a style after the plugin name).
    #[arg(long, requires = "plugin", default_value = "")]
    params: String,
    /// The input file; `-` or nothing reads stdin.
    input: Option<PathBuf>,
    /// Where outputs go: a folder (existing, or ending in `/`), a file, or `-` for stdout (the default).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The object key the plugin sees (default: the input's file name).
    #[arg(long)]
    key: Option<String>,
    /// Wall-clock limit per call, e.g. `30s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    deadline: Option<Duration>,
    /// Memory limit of the plugin instance, e.g. `256MiB`.
    #[arg(long)]
    max_memory: Option<bytesize::ByteSize>,
    /// Limit on the total bytes of all outputs, e.g. `1GiB`.
    #[arg(long)]
    max_output: Option<bytesize::ByteSize>,
    /// Folder of the compile cache [default: `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`].
    /// A plugin compiled once starts in milliseconds on every later run.
    #[arg(long, env = "KILN_CACHE_DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Compile the plugin afresh and keep nothing.
    #[arg(long)]
    no_cache: bool,
    /// Print the result as JSON on stderr.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: ProcessArgs) -> anyhow::Result<()> {
    let defaults = Limits::default();
    let limits = Limits {
        deadline: args.deadline.unwrap_or(defaults.deadline),
        max_memory: args.max_memory.map_or(defaults.max_memory, |b| b.as_u64()),
        max_output: args.max_output.map_or(defaults.max_output, |b| b.as_u64()),
        ..defaults
    };
    let cache_dir = if args.no_cache { None } else { args.cache_dir.clone().or_else(user_cache_dir) };
    let config = RuntimeConfig { limits, max_instances: 2, cache_dir, ..RuntimeConfig::default() };
    let runtime = crate::engine::plugin_runtime(config)?;

    let (label, wasm, params) = match (&args.style, &args.plugin) {
        (Some(style), _) => {
            let (name, params) = bundled::split_style(style);
            let Some(wasm) = bundled::get(name) else {
                bail!(
                    "unknown style `{name}` (in --style `{style}`): bundled plugins are {}",
                    bundled::names().collect::<Vec<_>>().join(", ")
                );
            };
            (name.to_string(), wasm.to_vec(), params.to_string())
        }
        (None, Some(path)) => {
            let wasm = std::fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?;
            (path.display().to_string(), wasm, args.params.clone())
        }
        (None, None) => bail!("give --style NAME/params or --plugin FILE.wasm"),
    };
    let plugin = runtime.load(&wasm).await.with_context(|| format!("loading plugin `{label}`"))?;
    tracing::debug!(cache = ?plugin.cache, load_time = ?plugin.load_time, "plugin loaded");
    let name = plugin.info.name.clone();
    if let Err(refusal) = runtime.validate(&plugin, &params).await.with_context(|| format!("plugin `{name}`"))? {
        bail!("plugin `{name}` refused the parameters `{params}`: {refusal}");
    }

    let stdin = args.input.as_ref().is_none_or(|p| p.as_os_str() == "-");
    let (input, mut object) = if stdin {
        (InputSource::from_reader(tokio::io::stdin()), ObjectMeta { key: "stdin".into(), ..Default::default() })
    } else {
        let path = args.input.as_ref().expect("checked above");
        let file = tokio::fs::File::open(path).await.with_context(|| format!("opening input {}", path.display()))?;
        let meta = file.metadata().await?;
        let object = ObjectMeta {
            key: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            size: Some(meta.len()),
            last_modified: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64),
            ..Default::default()
        };
        // A regular file is also read at an offset (`read-at`); a pipe or a device is only streamed.
        let input = if meta.is_file() {
            InputSource::from_file(file.into_std().await, meta.len())?
        } else {
            InputSource::from_reader(file)
        };
        (input, object)
    };
    object.bucket = "local".into();
    if let Some(key) = &args.key {
        object.key = key.clone();
    }
    let destination = destination(args.output.as_ref(), &object.key)?;

    let task = Task { params, object, input, target: Box::new(LocalTarget { destination }), limits };
    let outcome = runtime.run(&plugin, task).await.map_err(|e| anyhow::anyhow!("plugin `{name}`: {e}"))?;
    if args.json {
        let mut shown = serde_json::to_value(&outcome)?;
        shown["compile_cache"] = serde_json::to_value(plugin.cache)?;
        eprintln!("{shown}");
    } else {
        for out in &outcome.outputs {
            if out.location != "-" {
                eprintln!("wrote {} ({} bytes)", out.location, out.bytes);
            }
        }
        if outcome.outputs.is_empty() && outcome.result.is_none() {
            eprintln!("plugin `{name}` wrote no output");
        }
    }
    // A task's result (contract 0.2.0) goes to stdout, unless an output already did.
    if let Some(result) = &outcome.result {
        if outcome.outputs.iter().any(|o| o.location == "-") {
            eprintln!("result: {result}");
        } else {
            println!("{result}");
        }
    }
    Ok(())
}

/// The user's cache folder for compiled plugins: `$XDG_CACHE_HOME/kiln`, else
/// `$HOME/.cache/kiln`; none without either (then nothing is cached).
fn user_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("kiln"))
}

fn destination(output: Option<&PathBuf>, key: &str) -> anyhow::Result<Destination> {
    let Some(output) = output.filter(|o| o.as_os_str() != "-") else {
        return Ok(Destination::Stdout);
    };
    let as_text = output.to_string_lossy();
    if output.is_dir() || as_text.ends_with('/') {
        std::fs::create_dir_all(output).with_context(|| format!("creating output folder {}", output.display()))?;
        let name = key.rsplit('/').next().unwrap_or(key);
        let barename = match name.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem,
            _ => name,
        };
        return Ok(Destination::Folder { dir: output.clone(), barename: barename.to_string() });
    }
    Ok(Destination::File(output.clone()))
}
