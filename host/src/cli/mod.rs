//! The `kiln` command line: `serve`, `process`, and the client commands.

mod admin;
mod bench;
mod bucket;
mod client;
mod human;
mod job;
mod local_files;
mod plugin_new;
mod precompile;
mod process;
mod serve;
mod store;
mod style;
mod task;
mod watch;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Batch processing of objects in buckets, with sandboxed WebAssembly plugins",
    after_help = "Examples:\n  kiln serve                                  # a daemon on ./kiln-data, 127.0.0.1:7878\n  kiln job create --bucket photos --suffix .jpg --style 'image/resize,w_256/format,webp' \\\n       --output-bucket thumbs --output '{dirname}/{barename}.{autoext}' --wait\n  kiln process --style 'image/resize,w_256' cat.jpg -o out/\n\nThe client commands talk to KILN_URL with KILN_TOKEN. The manual: docs/ in the repository."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "KILN_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the daemon: the HTTP control plane and the job scheduler.
    #[command(
        after_help = "Examples:\n  kiln serve\n  kiln serve --data-dir /srv/kiln --listen 0.0.0.0:7878 --workers 8\n  KILN_ADMIN_TOKEN=$(cat token) kiln serve --config kiln.toml"
    )]
    Serve(serve::ServeArgs),
    /// Run a coordinator's tasks (`kiln serve --nats`), or list its workers.
    #[command(
        after_help = "Examples:\n  kiln worker --nats nats://coordinator:4222 --config worker.toml --slots 8\n  kiln worker list"
    )]
    Worker(worker::WorkerArgs),
    /// Jobs: create, list, get, suspend, resume, cancel, retry-failed, delete, wait.
    #[command(
        after_help = "Examples:\n  kiln job create --bucket photos --suffix .jpg --style thumb --output-bucket thumbs --output '{dirname}/{barename}.{autoext}' --wait\n  kiln job list --state running\n  kiln job wait 7"
    )]
    Job {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// A job's tasks: list (with filters and pagination) and get.
    #[command(
        after_help = "Examples:\n  kiln task list 7 --state failed\n  kiln task list 7 --prefix trip-1/ --limit 20\n  kiln task get 7 42"
    )]
    Task {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: task::TaskCommand,
    },
    /// Saved styles: create, list, get, delete.
    #[command(after_help = "Examples:\n  kiln style create thumb 'image/resize,w_256/format,webp'\n  kiln style list")]
    Style {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: style::StyleCommand,
    },
    /// The daemon's buckets.
    #[command(after_help = "Examples:\n  kiln buckets")]
    Buckets {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Plugins: upload (add), list, get, delete (rm), publish; and the bundled ones.
    #[command(
        after_help = "Examples:\n  kiln plugin add target/wasm32-wasip2/release/my_style.wasm --name my-style --version 0.1.0\n  kiln plugin list"
    )]
    Plugin {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: admin::PluginCommand,
    },
    /// Tenants (admin): create, list, get, update roles and quotas, delete.
    #[command(
        after_help = "Examples:\n  kiln tenant create acme --role thumbnailer --quota running_jobs=2\n  kiln tenant get acme"
    )]
    Tenant {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: admin::TenantCommand,
    },
    /// Tenants' bearer tokens (admin): create, list, revoke.
    #[command(after_help = "Examples:\n  kiln token create acme --label ci\n  kiln token list acme")]
    Token {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Roles, named sets of bucket/prefix grants (admin): create, list, get, delete.
    #[command(
        after_help = "Examples:\n  kiln role create thumbnailer --grant photos:in/:read --grant thumbs::write\n  kiln role list"
    )]
    Role {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: admin::RoleCommand,
    },
    /// Running jobs, live: progress bars, rates and ETAs.
    #[command(
        after_help = "Examples:\n  kiln top\n  kiln top --interval 5s\n  kiln top --once        # one table and exit (also when not at a terminal)"
    )]
    Top {
        #[command(flatten)]
        client: client::ClientArgs,
        /// How often the list of running jobs is read again (each job's bar moves live between).
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// Print the running jobs once and exit.
        #[arg(long)]
        once: bool,
    },
    /// A job's webhook deliveries.
    #[command(after_help = "Examples:\n  kiln webhook list 7\n  kiln webhook list 7 --json")]
    Webhook {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Who your token names.
    #[command(after_help = "Examples:\n  kiln whoami")]
    Whoami {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Shell completions for bash, zsh, fish, elvish or PowerShell, on stdout.
    #[command(after_help = "Example:\n  kiln completions bash > ~/.local/share/bash-completion/completions/kiln")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff), on stdout.
    #[command(after_help = "Example:\n  kiln man > kiln.1 && man ./kiln.1")]
    Man,
    /// The store: `check` it (daemon stopped) or `backup` a running daemon's.
    #[command(
        after_help = "Examples:\n  kiln store backup kiln-$(date +%F).redb\n  kiln store check --file kiln-$(date +%F).redb\n  kiln store check --data-dir kiln-data      # with the daemon stopped"
    )]
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Run one style over one local file (or stdin), writing its outputs locally.
    #[command(
        after_help = "Examples:\n  kiln process --style 'image/resize,w_256/format,webp' cat.jpg -o out/\n  cat notes.md | kiln process --style markdown > notes.html\n  kiln process --plugin my_style.wasm --params 'shout' in.txt -o out.txt"
    )]
    Process(process::ProcessArgs),
    /// Compile the bundled plugins into the compile cache, so a daemon's first start is ready at once.
    #[command(
        after_help = "Examples:\n  kiln precompile --data-dir /srv/kiln          # in an image build or install script\n  kiln precompile --cache-dir /var/cache/kiln   # a cache several daemons share"
    )]
    Precompile(precompile::PrecompileArgs),
    /// Benchmarks, reported as ratios against baselines from the same run.
    #[command(after_help = "Examples:\n  kiln bench runtime\n  kiln bench --help")]
    Bench(bench::BenchArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    if !matches!(cli.command, Command::Serve(_)) {
        // A command piped into `head` ends quietly when the pipe closes, as
        // Unix tools do, instead of panicking on "Broken pipe". Not the
        // daemon: a client that hangs up must not kill it.
        #[cfg(unix)]
        // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // Blocking-pool threads (store transactions, local file I/O, compiles)
    // grew to 70 on 2 cores through a million-task job, tokio's ceiling being
    // 512: a burst of calls each started a thread, kept 10 s. A few per core
    // carry the work (calls are short, and the committer batches); the
    // margin leaves room for a disk that stalls a worker's every call.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(4 * cores + 16)
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Process(args) => process::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Job { client, command } => job::job(&client::Client::new(&client), command).await,
            Command::Task { client, command } => task::task(&client::Client::new(&client), command).await,
            Command::Style { client, command } => style::style(&client::Client::new(&client), command).await,
            Command::Buckets { client } => bucket::buckets(&client::Client::new(&client)).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Precompile(args) => precompile::run(args).await,
            Command::Plugin { client, command } => admin::plugin(&client::Client::new(&client), command).await,
            Command::Tenant { client, command } => admin::tenant(&client::Client::new(&client), command).await,
            Command::Token { client, command } => admin::token(&client::Client::new(&client), command).await,
            Command::Role { client, command } => admin::role(&client::Client::new(&client), command).await,
            Command::Store { command } => store::run(command).await,
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut <Cli as clap::CommandFactory>::command(),
                    "kiln",
                    &mut std::io::stdout(),
                );
                Ok(())
            }
            Command::Man => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut std::io::stdout())
                .map_err(anyhow::Error::from),
            Command::Top { client, interval, once } => watch::top(&client::Client::new(&client), interval, once).await,
            Command::Webhook { client, command: WebhookCommand::List { job } } => {
                watch::webhooks(&client::Client::new(&client), job).await
            }
            Command::Whoami { client } => admin::whoami(&client::Client::new(&client)).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Subcommand)]
enum WebhookCommand {
    /// Events delivered (counted), pending (with their next attempt) and given up on (with the last error).
    #[command(after_help = "Example:\n  kiln webhook list 7")]
    List {
        /// The job's id.
        job: u64,
    },
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| EnvFilter::new("info,cranelift=warn,wasmtime=warn"));
    // Colour only for a person at a terminal: never in a log file or a pipe
    // (and never with NO_COLOR set, https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command, subcommand, flag and argument says what it is; every
    /// top-level command shows examples.
    #[test]
    fn every_command_and_flag_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && path != " kiln" {
                missing.push(format!("{path}: no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !["help", "version"].contains(&id) {
                    missing.push(format!("{path} <{id}>: no description"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &path, missing);
                }
            }
        }
        let cli = super::Cli::command();
        let mut missing = Vec::new();
        walk(&cli, "", &mut missing);
        assert!(missing.is_empty(), "{} undescribed:\n{}", missing.len(), missing.join("\n"));
        // Every command a person runs shows an example or two.
        fn examples(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_after_help().is_none() && !sub.has_subcommands() {
                    missing.push(path.clone());
                }
                examples(sub, &path, missing);
            }
        }
        let mut bare = Vec::new();
        examples(&cli, "kiln", &mut bare);
        assert!(bare.is_empty(), "commands without examples (after_help):\n{}", bare.join("\n"));
    }

    #[test]
    fn completions_and_the_man_page_are_generated() {
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut super::Cli::command(), "kiln", &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("complete -F") && script.contains("retry-failed"), "{script:.300}");
        let mut man = Vec::new();
        clap_mangen::Man::new(super::Cli::command()).render(&mut man).unwrap();
        assert!(String::from_utf8(man).unwrap().contains(".TH kiln"));
    }
}
