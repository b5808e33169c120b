//! Daemon configuration: embedded defaults, overridden by a TOML file, then by
//! environment variables and flags (`kiln serve --help` lists them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::RuntimeConfig;

/// The whole configuration. Every field has a default, so an empty file (or
/// none) gives a working daemon on loopback with data in `./kiln-data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP control plane.
    pub listen: SocketAddr,
    /// The redb file, the compile cache and the local buckets live here.
    pub data_dir: PathBuf,
    /// The compile cache, if not `<data_dir>/cache`: several daemons (or a
    /// daemon and `kiln process`) may share one.
    pub cache_dir: Option<PathBuf>,
    /// Tasks in flight across the whole daemon.
    pub workers: usize,
    /// Results committed per redb transaction, at most (group commit).
    pub commit_batch: usize,
    /// Longest a result waits for its group commit, in milliseconds.
    pub commit_delay_ms: u64,
    /// Attempts per task for transient (I/O) failures.
    pub max_attempts: u32,
    /// Buckets besides the local folders under `<data_dir>/buckets/`.
    pub buckets: BTreeMap<String, BucketConfig>,
    /// The WebAssembly runtime: default per-task limits, pool size, stack.
    pub runtime: RuntimeConfig,
    /// The admin's bearer token. If unset, one is generated at first start,
    /// printed once, and kept only as its SHA-256.
    pub admin_token: Option<String>,
    /// The quotas each new tenant starts with.
    pub tenant_quotas: crate::auth::Quotas,
    /// Webhook delivery: timeout, backoff, when to give up.
    pub webhooks: crate::notify::WebhookConfig,
    /// On SIGTERM or Ctrl-C: how long tasks in flight may go on before the
    /// daemon exits (those still running then run again at the next start).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: std::time::Duration,
    /// How long a plugin upload waits for its compile: a compile that takes
    /// longer goes on in the background, and the upload answers `202` with the
    /// plugin `compiling`.
    #[serde(with = "humantime_serde")]
    pub plugin_upload_wait: std::time::Duration,
    /// Scale-out: with `nats` set, tasks run on `kiln worker`s (see docs/cluster.md).
    pub cluster: ClusterConfig,
}

/// `[cluster]`: this daemon as the coordinator of workers reached through NATS JetStream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server, `nats://host:4222` (flag `--nats`, env `KILN_NATS`).
    pub nats: Option<String>,
    /// Tasks the coordinator runs itself besides its workers' (default 0).
    pub local_workers: usize,
    /// How long a task may go without a sign of life from its worker (a
    /// running task acks progress at a third of it) before JetStream hands
    /// it to another worker.
    #[serde(with = "humantime_serde")]
    pub ack_wait: std::time::Duration,
    /// How many times a task may be handed to a worker; when every one of
    /// them stopped answering, the task fails with `worker-lost`.
    pub max_deliveries: u32,
    /// Copies JetStream keeps of each stream, on as many NATS servers of a
    /// NATS cluster (1, 3 or 5): with 3, the work survives losing one server.
    pub replicas: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats: None,
            local_workers: 0,
            ack_wait: std::time::Duration::from_secs(30),
            max_deliveries: 3,
            replicas: 1,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7878".parse().expect("valid default address"),
            data_dir: PathBuf::from("kiln-data"),
            cache_dir: None,
            workers: 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            commit_batch: 512,
            commit_delay_ms: 5,
            max_attempts: 3,
            buckets: BTreeMap::new(),
            runtime: RuntimeConfig::default(),
            admin_token: None,
            tenant_quotas: crate::auth::Quotas::default(),
            webhooks: crate::notify::WebhookConfig::default(),
            shutdown_grace: std::time::Duration::from_secs(10),
            plugin_upload_wait: std::time::Duration::from_secs(2),
            cluster: ClusterConfig::default(),
        }
    }
}

/// What a bucket's name may be, as error messages say it.
pub const BUCKET_NAME_RULE: &str = "use 1 to 63 letters, digits, `-`, `_` or `.`, not starting with `.`";

/// Whether `name` may name a bucket (here, and as a folder under `buckets/`).
/// The rule lives with the configuration, which `objects` builds on.
pub fn is_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.')
}

/// One bucket. Every kind is reached through the `object_store` crate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BucketConfig {
    /// A local folder (the default kind).
    Local { path: PathBuf },
    /// In memory; lost at exit. For trials and tests.
    Memory,
    /// S3 or any S3-compatible server.
    S3 {
        bucket: String,
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default = "default_region")]
        region: String,
        #[serde(default)]
        access_key_id: Option<String>,
        #[serde(default)]
        secret_access_key: Option<String>,
        /// Path-style requests (`endpoint/bucket/key`), as most S3-compatible servers want.
        #[serde(default)]
        path_style: bool,
        /// Allow a plain-HTTP endpoint.
        #[serde(default)]
        allow_http: bool,
    },
    /// Google Cloud Storage (its XML API, which `object_store` speaks).
    Gcs {
        bucket: String,
        #[serde(default)]
        service_account_path: Option<PathBuf>,
        /// Another base URL than `https://storage.googleapis.com`, e.g. an emulator's.
        #[serde(default)]
        endpoint: Option<String>,
        /// An OAuth access token sent as is, instead of one fetched with the
        /// service account: it is never refreshed (one from `gcloud auth
        /// print-access-token` lasts about an hour). With `use_emulator`, a
        /// placeholder for a server that needs a token in `Authorization`.
        #[serde(default)]
        bearer_token: Option<String>,
        /// An emulator: plain HTTP allowed, no OAuth (an empty bearer token
        /// unless `bearer_token` is given). Needs `endpoint`.
        #[serde(default)]
        use_emulator: bool,
    },
    /// Azure Blob Storage.
    Azure {
        /// The storage account; with `use_emulator`, defaults to Azurite's `devstoreaccount1`.
        #[serde(default)]
        account: Option<String>,
        container: String,
        /// The account key; with `use_emulator`, defaults to Azurite's well-known key.
        #[serde(default)]
        access_key: Option<String>,
        /// Another blob endpoint than `https://{account}.blob.core.windows.net`.
        #[serde(default)]
        endpoint: Option<String>,
        /// Azurite (or the legacy storage emulator): plain HTTP, path-style
        /// URLs `endpoint/account/container/key`, the well-known account and key
        /// unless given. `endpoint` defaults to `$AZURITE_BLOB_STORAGE_URL`, else
        /// `http://127.0.0.1:10000`.
        #[serde(default)]
        use_emulator: bool,
    },
}

impl BucketConfig {
    /// The definition as a cluster shares it with its workers: a cloud
    /// bucket without its secrets (each worker uses its own credentials,
    /// from its environment); `None` for a local or memory bucket, which
    /// means nothing on another machine.
    pub fn shareable(&self) -> Option<BucketConfig> {
        match self {
            BucketConfig::Local { .. } | BucketConfig::Memory => None,
            BucketConfig::S3 { .. } => {
                let mut shared = self.clone();
                if let BucketConfig::S3 { access_key_id, secret_access_key, .. } = &mut shared {
                    (*access_key_id, *secret_access_key) = (None, None);
                }
                Some(shared)
            }
            BucketConfig::Gcs { .. } => {
                let mut shared = self.clone();
                if let BucketConfig::Gcs { service_account_path, bearer_token, .. } = &mut shared {
                    (*service_account_path, *bearer_token) = (None, None);
                }
                Some(shared)
            }
            BucketConfig::Azure { .. } => {
                let mut shared = self.clone();
                if let BucketConfig::Azure { access_key, .. } = &mut shared {
                    *access_key = None;
                }
                Some(shared)
            }
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the TOML file at `path` if given.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
    }

    /// Checks that cannot be expressed in types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::Invalid("`workers` must be at least 1".into()));
        }
        if self.cluster.ack_wait < std::time::Duration::from_secs(1) {
            return Err(ConfigError::Invalid("`cluster.ack_wait` must be at least 1s".into()));
        }
        if ![1, 3, 5].contains(&self.cluster.replicas) {
            return Err(ConfigError::Invalid("`cluster.replicas` must be 1, 3 or 5".into()));
        }
        if !(1..=100).contains(&self.cluster.max_deliveries) {
            return Err(ConfigError::Invalid("`cluster.max_deliveries` must be between 1 and 100".into()));
        }
        if self.commit_batch == 0 {
            return Err(ConfigError::Invalid("`commit_batch` must be at least 1".into()));
        }
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid("`admin_token` must be at least 16 characters".into()));
        }
        if self.webhooks.concurrency == 0 {
            return Err(ConfigError::Invalid("`webhooks.concurrency` must be at least 1".into()));
        }
        if self.runtime.memory_budget.is_some_and(|b| b < self.runtime.limits.max_memory) {
            return Err(ConfigError::Invalid(
                "`runtime.memory_budget` must be at least `runtime.limits.max_memory`: a task must fit".into(),
            ));
        }
        let (limits, ceilings) = (&self.runtime.limits, &self.runtime.max_limits);
        if ceilings.deadline < limits.deadline {
            return Err(ConfigError::Invalid(
                "`runtime.max_limits.deadline` must be at least `runtime.limits.deadline`".into(),
            ));
        }
        if ceilings.max_output < limits.max_output {
            return Err(ConfigError::Invalid(
                "`runtime.max_limits.max_output` must be at least `runtime.limits.max_output`".into(),
            ));
        }
        if self.runtime.control_deadline.is_zero() {
            return Err(ConfigError::Invalid("`runtime.control_deadline` must be above zero".into()));
        }
        let text = &self.runtime.text;
        // A cap under a line of text would hide every message; the markers alone take ~40 bytes.
        for (field, value) in [
            ("max_message", text.max_message),
            ("max_log_line", text.max_log_line),
            ("max_info_field", text.max_info_field),
        ] {
            if value < 64 {
                return Err(ConfigError::Invalid(format!("`runtime.text.{field}` must be at least 64 bytes")));
            }
            if value > crate::runtime::MAX_TEXT_CAP {
                return Err(ConfigError::Invalid(format!(
                    "`runtime.text.{field}` must be at most {} bytes (what the host copies of one plugin string)",
                    crate::runtime::MAX_TEXT_CAP
                )));
            }
        }
        if text.max_info_formats > crate::runtime::MAX_TEXT_ITEMS {
            return Err(ConfigError::Invalid(format!(
                "`runtime.text.max_info_formats` must be at most {}",
                crate::runtime::MAX_TEXT_ITEMS
            )));
        }
        self.tenant_quotas.check().map_err(|(field, msg)| ConfigError::Invalid(format!("tenant_{field}: {msg}")))?;
        for (name, bucket) in &self.buckets {
            if !is_bucket_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "buckets.{name}: bucket name `{name}` is invalid: {BUCKET_NAME_RULE}"
                )));
            }
            let problem = match bucket {
                BucketConfig::Gcs { use_emulator: true, endpoint: None, .. } => {
                    Some("`use_emulator` needs `endpoint`, the emulator's base URL")
                }
                BucketConfig::Azure { use_emulator: false, account: None, .. } => {
                    Some("`account` is required (unless `use_emulator = true`)")
                }
                _ => None,
            };
            if let Some(p) = problem {
                return Err(ConfigError::Invalid(format!("buckets.{name}: {p}")));
            }
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("kiln.redb")
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.data_dir.join("cache"))
    }
    /// Plugins installed by dropping a component here; loaded at start.
    pub fn plugins_dir(&self) -> PathBuf {
        self.data_dir.join("plugins")
    }
    /// Uploaded plugins, each named by its SHA-256.
    pub fn plugin_blobs_dir(&self) -> PathBuf {
        self.data_dir.join("plugin-blobs")
    }
    pub fn local_buckets_dir(&self) -> PathBuf {
        self.data_dir.join("buckets")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_bucket_definitions_hold_no_secrets() {
        let cfg: Config = toml::from_str(
            r#"
            [buckets.s3]
            kind = "s3"
            bucket = "b"
            access_key_id = "AKIA-SECRET"
            secret_access_key = "very-secret"
            [buckets.gcs]
            kind = "gcs"
            bucket = "g"
            bearer_token = "ya29.secret"
            [buckets.az]
            kind = "azure"
            account = "acct"
            container = "c"
            access_key = "secret-key"
            [buckets.disk]
            kind = "local"
            path = "/tmp/x"
            "#,
        )
        .unwrap();
        for name in ["s3", "gcs", "az"] {
            let shared = serde_json::to_string(&cfg.buckets[name].shareable().unwrap()).unwrap();
            for secret in ["AKIA-SECRET", "very-secret", "ya29.secret", "secret-key"] {
                assert!(!shared.contains(secret), "{shared}");
            }
        }
        assert!(matches!(cfg.buckets["s3"].shareable(), Some(BucketConfig::S3 { bucket, .. }) if bucket == "b"));
        assert_eq!(cfg.buckets["disk"].shareable(), None, "a local folder means nothing elsewhere");
    }

    #[test]
    fn parses_every_bucket_kind_and_refuses_unknown_fields() {
        let cfg: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            workers = 4
            [runtime.limits]
            deadline = "5s"
            [buckets.in]
            kind = "s3"
            bucket = "photos"
            endpoint = "http://127.0.0.1:5000"
            path_style = true
            allow_http = true
            [buckets.scratch]
            kind = "memory"
            [buckets.disk]
            kind = "local"
            path = "/tmp/x"
            [buckets.gcs]
            kind = "gcs"
            bucket = "g"
            endpoint = "http://127.0.0.1:4443"
            bearer_token = "placeholder"
            use_emulator = true
            [buckets.blobs]
            kind = "azure"
            container = "c"
            use_emulator = true
            "#,
        )
        .unwrap();
        assert_eq!(cfg.workers, 4);
        assert_eq!(cfg.runtime.limits.deadline, std::time::Duration::from_secs(5));
        assert!(matches!(cfg.buckets["in"], BucketConfig::S3 { path_style: true, .. }));
        assert_eq!(cfg.buckets["scratch"], BucketConfig::Memory);
        assert!(
            matches!(&cfg.buckets["gcs"], BucketConfig::Gcs { use_emulator: true, bearer_token: Some(t), .. } if t == "placeholder")
        );
        assert!(matches!(&cfg.buckets["blobs"], BucketConfig::Azure { use_emulator: true, account: None, .. }));
        cfg.validate().unwrap();

        let no_account: Config = toml::from_str("[buckets.a]\nkind = \"azure\"\ncontainer = \"c\"").unwrap();
        assert!(no_account.validate().unwrap_err().to_string().contains("`account` is required"));
        let no_endpoint: Config =
            toml::from_str("[buckets.g]\nkind = \"gcs\"\nbucket = \"b\"\nuse_emulator = true").unwrap();
        assert!(no_endpoint.validate().unwrap_err().to_string().contains("needs `endpoint`"));

        let webhooks: Config = toml::from_str("[webhooks]\nallow_private_networks = true\nconcurrency = 0").unwrap();
        assert!(webhooks.webhooks.allow_private_networks);
        assert!(webhooks.validate().unwrap_err().to_string().contains("webhooks.concurrency"));

        let err = toml::from_str::<Config>("listen_address = 1").unwrap_err().to_string();
        assert!(err.contains("listen_address"), "{err}");
    }
}
