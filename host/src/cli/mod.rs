//! The `kiln` command line: `serve`, `process`, and the client commands.

mod admin;
mod bench;
mod client;
mod local_files;
mod process;
mod serve;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "kiln", version, about = "Batch processing of objects in buckets, with sandboxed WebAssembly plugins")]
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
    Serve(serve::ServeArgs),
    /// Jobs: create, list, get, suspend, resume, cancel, retry-failed, delete, wait.
    Job {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: client::JobCommand,
    },
    /// A job's tasks: list (with filters and pagination) and get.
    Task {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: client::TaskCommand,
    },
    /// Saved styles: create, list, get, delete.
    Style {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: client::StyleCommand,
    },
    /// The daemon's buckets.
    Buckets {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Plugins: upload (add), list, get, delete (rm), publish; and the bundled ones.
    Plugin {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: admin::PluginCommand,
    },
    /// Tenants (admin): create, list, get, update roles and quotas, delete.
    Tenant {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: admin::TenantCommand,
    },
    /// Tenants' bearer tokens (admin): create, list, revoke.
    Token {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Roles, named sets of bucket/prefix grants (admin): create, list, get, delete.
    Role {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: admin::RoleCommand,
    },
    /// Who your token names.
    Whoami {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// The store: `check` it (daemon stopped) or `backup` a running daemon's.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Run one style over one local file (or stdin), writing its outputs locally.
    Process(process::ProcessArgs),
    /// Benchmarks, reported as ratios against baselines from the same run.
    Bench(bench::BenchArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
            Command::Job { client, command } => client::job(&client::Client::new(&client), command).await,
            Command::Task { client, command } => client::task(&client::Client::new(&client), command).await,
            Command::Style { client, command } => client::style(&client::Client::new(&client), command).await,
            Command::Buckets { client } => client::buckets(&client::Client::new(&client)).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Plugin { client, command } => admin::plugin(&client::Client::new(&client), command).await,
            Command::Tenant { client, command } => admin::tenant(&client::Client::new(&client), command).await,
            Command::Token { client, command } => admin::token(&client::Client::new(&client), command).await,
            Command::Role { client, command } => admin::role(&client::Client::new(&client), command).await,
            Command::Store { command } => store::run(command).await,
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
