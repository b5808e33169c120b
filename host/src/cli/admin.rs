//! Client commands for tenancy and plugins: `kiln tenant|token|role|plugin|whoami`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::Client;

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (admin): `kiln tenant create acme --role thumbs`.
    #[command(after_help = "Example:\n  kiln tenant create acme --role thumbnailer --quota running_jobs=2")]
    Create {
        /// The tenant's name: letters, digits, `-` and `_`.
        name: String,
        /// A role to grant (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A quota to set, NAME=VALUE (repeatable), e.g. `running_jobs=2`, `task_deadline=10m`, `task_output=8GiB`.
        #[arg(long = "quota")]
        quotas: Vec<String>,
    },
    /// Every tenant (admin).
    #[command(after_help = "Example:\n  kiln tenant list")]
    List,
    /// One tenant: its roles, quotas and usage.
    #[command(after_help = "Example:\n  kiln tenant get acme")]
    Get {
        /// The tenant.
        name: String,
    },
    /// Change a tenant's roles or quotas (admin).
    #[command(after_help = "Example:\n  kiln tenant update acme --role thumbnailer --quota task_deadline=10s")]
    Update {
        /// The tenant.
        name: String,
        /// Replace the roles with these (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// NAME=VALUE (repeatable).
        #[arg(long = "quota")]
        quotas: Vec<String>,
    },
    /// Delete a tenant and its tokens and styles; roles are shared and stay (admin).
    #[command(after_help = "Example:\n  kiln tenant delete acme")]
    Delete {
        /// The tenant.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token to a tenant (admin). The token is printed once.
    #[command(after_help = "Example:\n  kiln token create acme --label ci")]
    Create {
        /// The tenant the token acts as.
        tenant: String,
        /// A note to tell tokens apart, e.g. `ci`.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// A tenant's tokens: ids, labels, creation times (never the tokens).
    #[command(after_help = "Example:\n  kiln token list acme")]
    List {
        /// The tenant.
        tenant: String,
    },
    /// Revoke a token: it stops working at once.
    #[command(after_help = "Example:\n  kiln token revoke acme 3f2a9c1b")]
    Revoke {
        /// The tenant.
        tenant: String,
        /// The token's id, as `token list` shows it.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum RoleCommand {
    /// Create or replace a role (admin): `--grant photos:in/:read --grant photos:thumbs/:write`.
    #[command(after_help = "Example:\n  kiln role create thumbnailer --grant photos:in/:read --grant thumbs::write")]
    Create {
        /// The role's name.
        name: String,
        /// BUCKET:PREFIX:ACCESS with ACCESS read, write or read-write (repeatable).
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
    },
    /// Every role (admin).
    #[command(after_help = "Example:\n  kiln role list")]
    List,
    /// One role and its grants.
    #[command(after_help = "Example:\n  kiln role get thumbnailer")]
    Get {
        /// The role.
        name: String,
    },
    /// Delete a role (admin).
    #[command(after_help = "Example:\n  kiln role delete thumbnailer")]
    Delete {
        /// The role.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Upload a plugin component: `kiln plugin add my-style.wasm --name my-style --version 1.0.0`.
    #[command(
        after_help = "Examples:\n  kiln plugin add target/wasm32-wasip2/release/my_style.wasm\n  kiln plugin add my_style.wasm --name my-style --version 1.0.0"
    )]
    Add {
        /// The component file (`.wasm`, built for wasm32-wasip2).
        file: std::path::PathBuf,
        /// Default: the name the plugin gives itself.
        #[arg(long)]
        name: Option<String>,
        /// Default: the version the plugin gives itself.
        #[arg(long)]
        version: Option<String>,
        /// Return once the daemon has the component, while it may still be
        /// compiling (state `compiling`; `kiln plugin get` shows when it is `ready`).
        #[arg(long)]
        no_wait: bool,
    },
    /// The plugins you may use.
    #[command(after_help = "Example:\n  kiln plugin list")]
    List,
    /// One plugin: its version, digest, size and what it reads and writes.
    #[command(after_help = "Examples:\n  kiln plugin get image\n  kiln plugin get my-style --owner acme")]
    Get {
        /// The plugin.
        name: String,
        /// Admin: the owning tenant.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Delete an uploaded plugin (refused while a running job uses it).
    #[command(after_help = "Example:\n  kiln plugin rm my-style")]
    Rm {
        /// The plugin.
        name: String,
        /// Admin: the owning tenant.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Make a plugin usable by every tenant (admin).
    #[command(
        after_help = "Examples:\n  kiln plugin publish my-style --owner acme\n  kiln plugin publish my-style --owner acme --undo"
    )]
    Publish {
        /// The plugin.
        name: String,
        /// The owning tenant.
        #[arg(long)]
        owner: Option<String>,
        /// Make it private again.
        #[arg(long)]
        undo: bool,
    },
    /// The plugins bundled in this binary (no daemon needed).
    #[command(after_help = "Example:\n  kiln plugin bundled")]
    Bundled,
    /// Start a plugin project (contract 0.2.0) in Rust, JavaScript or Python, with a test and a README (no daemon needed).
    #[command(
        after_help = "Examples:\n  kiln plugin new shout                 # Rust, in ./shout\n  kiln plugin new shout --lang js\n  kiln plugin new shout --lang python --dir plugins/shout"
    )]
    New {
        /// The plugin's name: lowercase letters, digits and `-`.
        name: String,
        /// The language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: super::plugin_new::Lang,
        /// Where to create it (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Rust: the SDK's folder (default: plugin-sdk/ beside the sources this binary was built from).
        #[arg(long)]
        sdk: Option<std::path::PathBuf>,
    },
}

fn quotas(pairs: &[String]) -> anyhow::Result<Value> {
    let mut q = serde_json::Map::new();
    for p in pairs {
        let (k, v) = p.split_once('=').with_context(|| format!("--quota `{p}`: expected NAME=VALUE"))?;
        // Sizes may be written with units, as the CLI shows them: `task_output=8GiB`.
        let size = ["plugin_size", "task_memory", "task_output"].contains(&k);
        let value = match (v.parse::<u64>(), v.parse::<bytesize::ByteSize>()) {
            (Ok(n), _) => Value::from(n),
            (Err(_), Ok(b)) if size => Value::from(b.as_u64()),
            _ => Value::from(v),
        };
        q.insert(k.to_string(), value);
    }
    Ok(Value::Object(q))
}

/// `kiln tenant get`: roles, quotas with sizes in units, and when it was made.
fn tenant_summary(t: &Value) -> String {
    let roles: Vec<&str> = t["roles"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let q = &t["quotas"];
    let mut lines = vec![
        format!("tenant {}", s(t, "name")),
        format!("  roles     {}", if roles.is_empty() { "(none)".into() } else { roles.join(", ") }),
        format!("  created   {}", super::human::when(&t["created_at"])),
        "  quotas".to_string(),
    ];
    for (key, shown) in [
        ("running_jobs", q["running_jobs"].to_string()),
        ("tasks_in_flight", q["tasks_in_flight"].to_string()),
        ("plugins", q["plugins"].to_string()),
        ("plugin_size", super::human::size(&q["plugin_size"])),
        ("task_memory", super::human::size(&q["task_memory"])),
        ("task_deadline", q["task_deadline"].as_str().unwrap_or("-").to_string()),
        ("task_output", super::human::size(&q["task_output"])),
    ] {
        lines.push(format!("    {key:<16} {shown}"));
    }
    lines.join("\n")
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn lines(v: &Value, line: impl Fn(&Value) -> String) -> String {
    v.as_array().into_iter().flatten().map(line).collect::<Vec<_>>().join("\n")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

pub async fn tenant(client: &Client, cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Create { name, roles, quotas: q } => {
            let t = client.post("/v1/tenants", &json!({"name": name, "roles": roles, "quotas": quotas(&q)?})).await?;
            client.print(&t, |t| {
                format!("tenant {} created; issue it a token with `kiln token create {}`", s(t, "name"), s(t, "name"))
            });
        }
        TenantCommand::List => {
            let l = client.get("/v1/tenants", &[]).await?;
            client.print(&l, |l| {
                lines(l, |t| {
                    format!(
                        "{:<24} roles: {}",
                        s(t, "name"),
                        t["roles"]
                            .as_array()
                            .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                            .unwrap_or_default()
                    )
                })
            });
        }
        TenantCommand::Get { name } => {
            let t = client.get(&format!("/v1/tenants/{name}"), &[]).await?;
            client.print(&t, tenant_summary);
        }
        TenantCommand::Update { name, roles, quotas: q } => {
            let mut body = json!({"quotas": quotas(&q)?});
            if !roles.is_empty() {
                body["roles"] = json!(roles);
            }
            let t = client.patch(&format!("/v1/tenants/{name}"), &[], &body).await?;
            client.print(&t, pretty);
        }
        TenantCommand::Delete { name } => {
            client.delete(&format!("/v1/tenants/{name}"), &[]).await?;
            client.print(&json!({"deleted": name}), |_| format!("tenant {name} deleted"));
        }
    }
    Ok(())
}

pub async fn token(client: &Client, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { tenant, label } => {
            let t = client.post(&format!("/v1/tenants/{tenant}/tokens"), &json!({"label": label})).await?;
            client.print(&t, |t| {
                format!("token {} for tenant {} (shown only now):\n{}", s(t, "id"), tenant, s(t, "token"))
            });
        }
        TokenCommand::List { tenant } => {
            let l = client.get(&format!("/v1/tenants/{tenant}/tokens"), &[]).await?;
            client.print(&l, |l| lines(l, |t| format!("{:<14} {}", s(t, "id"), s(t, "label"))));
        }
        TokenCommand::Revoke { tenant, id } => {
            client.delete(&format!("/v1/tenants/{tenant}/tokens/{id}"), &[]).await?;
            client.print(&json!({"revoked": id}), |_| format!("token {id} revoked"));
        }
    }
    Ok(())
}

pub async fn role(client: &Client, cmd: RoleCommand) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Create { name, grants } => {
            let mut list = Vec::new();
            for g in &grants {
                let mut parts = g.splitn(3, ':');
                let (Some(bucket), Some(prefix), Some(access)) = (parts.next(), parts.next(), parts.next()) else {
                    anyhow::bail!("--grant `{g}`: expected BUCKET:PREFIX:ACCESS, e.g. photos:in/:read");
                };
                list.push(json!({"bucket": bucket, "prefix": prefix, "access": access}));
            }
            let r = client.post("/v1/roles", &json!({"name": name, "grants": list})).await?;
            client.print(&r, |r| format!("role {} saved", s(r, "name")));
        }
        RoleCommand::List => {
            let l = client.get("/v1/roles", &[]).await?;
            client.print(&l, |l| {
                lines(l, |r| {
                    let grants: Vec<String> = r["grants"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|g| format!("{}:{}:{}", s(g, "bucket"), s(g, "prefix"), s(g, "access")))
                        .collect();
                    format!("{:<20} {}", s(r, "name"), grants.join(" "))
                })
            });
        }
        RoleCommand::Get { name } => {
            let r = client.get(&format!("/v1/roles/{name}"), &[]).await?;
            client.print(&r, pretty);
        }
        RoleCommand::Delete { name } => {
            client.delete(&format!("/v1/roles/{name}"), &[]).await?;
            client.print(&json!({"deleted": name}), |_| format!("role {name} deleted"));
        }
    }
    Ok(())
}

/// Poll an upload that compiles in the daemon until it is ready; fail if it failed.
async fn wait_compiled(client: &Client, uploaded: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let name = s(uploaded, "name");
    let owner: Vec<(&str, String)> =
        uploaded["owner"].as_str().map(|o| vec![("owner", o.to_string())]).unwrap_or_default();
    eprintln!("plugin {name}: compiling in the daemon (a large component takes a while)...");
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if started.elapsed() > std::time::Duration::from_secs(15 * 60) {
            anyhow::bail!("plugin {name} still compiling after 15 minutes: `kiln plugin get {name}` shows its state");
        }
        let p = client.get(&format!("/v1/plugins/{name}"), &owner).await?;
        match s(&p, "state") {
            "compiling" => continue,
            "failed" => anyhow::bail!("plugin {name} failed to compile: {}", s(&p, "error")),
            _ => return Ok(p),
        }
    }
}

pub async fn plugin(client: &Client, cmd: PluginCommand) -> anyhow::Result<()> {
    let owner_q = |o: Option<String>| o.map(|o| vec![("owner", o)]).unwrap_or_default();
    match cmd {
        PluginCommand::Add { file, name, version, no_wait } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut q = Vec::new();
            q.extend(name.map(|n| ("name", n)));
            q.extend(version.map(|v| ("version", v)));
            let mut p = client.post_bytes("/v1/plugins", &q, bytes).await?;
            if p["state"] == "compiling" && !no_wait {
                p = wait_compiled(client, &p).await?;
            }
            client.print(&p, |p| {
                let state = match s(p, "state") {
                    "compiling" => " (compiling: `kiln plugin get` shows when it is ready)",
                    _ => "",
                };
                format!("plugin {} {} uploaded (sha256 {}){state}", s(p, "name"), s(p, "version"), s(p, "sha256"))
            });
        }
        PluginCommand::List => {
            let l = client.get("/v1/plugins", &[]).await?;
            client.print(&l, |l| {
                lines(l, |p| {
                    let owner = p["owner"].as_str().unwrap_or("(admin)");
                    let public = if p["public"].as_bool() == Some(true) { "public" } else { "private" };
                    format!(
                        "{:<16} {:<10} {:<12} {:<8} {}",
                        s(p, "name"),
                        s(p, "version"),
                        owner,
                        public,
                        s(&p["info"], "description")
                    )
                })
            });
        }
        PluginCommand::Get { name, owner } => {
            let p = client.get(&format!("/v1/plugins/{name}"), &owner_q(owner)).await?;
            client.print(&p, pretty);
        }
        PluginCommand::Rm { name, owner } => {
            client.delete(&format!("/v1/plugins/{name}"), &owner_q(owner)).await?;
            client.print(&json!({"deleted": name}), |_| format!("plugin {name} deleted"));
        }
        PluginCommand::Publish { name, owner, undo } => {
            let p = client.patch(&format!("/v1/plugins/{name}"), &owner_q(owner), &json!({"public": !undo})).await?;
            client.print(&p, |p| format!("plugin {} is now {}", s(p, "name"), if undo { "private" } else { "public" }));
        }
        PluginCommand::New { name, lang, dir, sdk } => super::plugin_new::run(&name, lang, dir, sdk)?,
        PluginCommand::Bundled => {
            for name in crate::bundled::names() {
                println!("{name}");
            }
        }
    }
    Ok(())
}

pub async fn whoami(client: &Client) -> anyhow::Result<()> {
    let w = client.get("/v1/whoami", &[]).await?;
    client.print(&w, |w| {
        if w["admin"].as_bool() == Some(true) { "admin".into() } else { format!("tenant {}", s(&w["tenant"], "name")) }
    });
    Ok(())
}
