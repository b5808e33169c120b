//! `kiln style …`: saved styles.

use clap::Subcommand;
use serde_json::json;

use super::client::Client;

#[derive(Subcommand)]
pub enum StyleCommand {
    /// Save a style: `kiln style create thumb 'image/resize,w_256/format,webp'`.
    #[command(after_help = "Example:\n  kiln style create thumb 'image/resize,w_256/format,webp'")]
    Create {
        /// The style's name, used as `--style NAME`.
        name: String,
        /// What it stands for: `PLUGIN/params`.
        style: String,
    },
    /// The saved styles you may use.
    #[command(after_help = "Example:\n  kiln style list")]
    List,
    /// One saved style.
    #[command(after_help = "Example:\n  kiln style get thumb")]
    Get {
        /// The style.
        name: String,
    },
    /// Delete one of your saved styles.
    #[command(after_help = "Example:\n  kiln style delete thumb")]
    Delete {
        /// The style.
        name: String,
    },
    /// What a plugin's styles are: its actions and their parameters, its formats and output variables.
    #[command(
        after_help = "Examples:\n  kiln style describe image\n  kiln style describe my-style --owner acme --json"
    )]
    Describe {
        /// The plugin, as a style names it (`image` in `image/resize,w_256`).
        plugin: String,
        /// Admin: the owning tenant of an uploaded plugin.
        #[arg(long)]
        owner: Option<String>,
    },
}

pub async fn style(client: &Client, cmd: StyleCommand) -> anyhow::Result<()> {
    match cmd {
        StyleCommand::Create { name, style } => {
            let s = client.post("/v1/styles", &json!({"name": name, "style": style})).await?;
            client.print(&s, |s| format!("style {} saved", s["name"].as_str().unwrap_or("")));
        }
        StyleCommand::List => {
            let list = client.get("/v1/styles", &[]).await?;
            client.print(&list, |l| {
                l.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        format!(
                            "{:<20} {}/{}",
                            s["name"].as_str().unwrap_or(""),
                            s["plugin"].as_str().unwrap_or(""),
                            s["params"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        StyleCommand::Get { name } => {
            let s = client.get(&format!("/v1/styles/{name}"), &[]).await?;
            client.print(&s, |s| serde_json::to_string_pretty(s).unwrap_or_default());
        }
        StyleCommand::Delete { name } => {
            client.delete(&format!("/v1/styles/{name}"), &[]).await?;
            client.print(&json!({"deleted": name}), |_| format!("style {name} deleted"));
        }
        StyleCommand::Describe { plugin, owner } => {
            let query: Vec<(&str, String)> = owner.map(|o| ("owner", o)).into_iter().collect();
            let p = client.get(&format!("/v1/plugins/{plugin}"), &query).await?;
            client.print(&p["info"], super::human::plugin_description);
        }
    }
    Ok(())
}
