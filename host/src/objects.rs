//! The bucket registry over `object_store`: streaming reads, listings in key
//! order, and uploads that become visible only when a task succeeds.

mod local;
mod local_list;
mod staged;
mod upload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use crate::config::{BucketConfig, Config};
use crate::runtime::{InputSource, ObjectMeta, OutputTarget};
pub use upload::{BucketTarget, RenderKey};

/// Errors from buckets. `NotFound` and `UnknownBucket` are the caller's
/// mistakes; `Store` may be transient.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjectsError {
    #[error("unknown bucket `{name}`; known buckets: {known}")]
    UnknownBucket { name: String, known: String },
    #[error("bucket name `{0}` is invalid: {rule}", rule = crate::config::BUCKET_NAME_RULE)]
    BadBucketName(String),
    #[error("object `{key}` not found in bucket `{bucket}`")]
    NotFound { bucket: String, key: String },
    #[error("invalid key `{key}`: {reason}")]
    BadKey { key: String, reason: String },
    #[error("bucket `{bucket}`: {message}")]
    Store { bucket: String, message: String },
}

/// One configured bucket.
#[derive(Clone)]
pub struct Bucket {
    pub name: String,
    pub kind: &'static str,
    store: Arc<dyn ObjectStore>,
    /// For local buckets: the folder, listed by our own sorted walker and
    /// read and written by the fast path in `local`.
    local: Option<local::LocalDir>,
}

/// What `GET /v1/buckets` shows of a bucket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BucketInfo {
    pub name: String,
    pub kind: String,
}

/// All buckets: those in the config, plus one per folder of `<data_dir>/buckets/`.
pub struct Buckets {
    configured: BTreeMap<String, Bucket>,
    local_dir: PathBuf,
    /// The store's own name of each cloud bucket (S3/GCS bucket, Azure container) → Kiln's name.
    remote_names: BTreeMap<String, String>,
}

pub fn check_bucket_name(name: &str) -> Result<(), ObjectsError> {
    if crate::config::is_bucket_name(name) { Ok(()) } else { Err(ObjectsError::BadBucketName(name.to_string())) }
}

impl Buckets {
    pub fn new(config: &Config) -> anyhow::Result<Buckets> {
        let local_dir = config.local_buckets_dir();
        std::fs::create_dir_all(&local_dir)?;
        let mut configured = BTreeMap::new();
        let mut remote_names = BTreeMap::new();
        for (name, cfg) in &config.buckets {
            let bucket = build(name, cfg).map_err(|e| anyhow::anyhow!("bucket `{name}`: {e}"))?;
            configured.insert(name.clone(), bucket);
            if let BucketConfig::S3 { bucket, .. }
            | BucketConfig::Gcs { bucket, .. }
            | BucketConfig::Azure { container: bucket, .. } = cfg
            {
                remote_names.insert(bucket.clone(), name.clone());
            }
        }
        Ok(Buckets { configured, local_dir, remote_names })
    }

    /// Kiln's name of the bucket an object-store event names: a Kiln bucket
    /// name, or the store's own name of a configured cloud bucket.
    pub fn from_event_name(&self, name: &str) -> Option<String> {
        if self.get(name).is_ok() {
            return Some(name.to_string());
        }
        self.remote_names.get(name).cloned()
    }

    pub fn get(&self, name: &str) -> Result<Bucket, ObjectsError> {
        if let Some(b) = self.configured.get(name) {
            return Ok(b.clone());
        }
        check_bucket_name(name)?;
        let dir = self.local_dir.join(name);
        if dir.is_dir() {
            return build(name, &BucketConfig::Local { path: dir })
                .map_err(|e| ObjectsError::Store { bucket: name.to_string(), message: e.to_string() });
        }
        Err(ObjectsError::UnknownBucket {
            name: name.to_string(),
            known: self.list().into_iter().map(|b| b.name).collect::<Vec<_>>().join(", "),
        })
    }

    pub fn list(&self) -> Vec<BucketInfo> {
        let mut all: BTreeMap<String, String> =
            self.configured.values().map(|b| (b.name.clone(), b.kind.to_string())).collect();
        if let Ok(entries) = std::fs::read_dir(&self.local_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && check_bucket_name(&name).is_ok() {
                    all.entry(name).or_insert_with(|| "local".into());
                }
            }
        }
        all.into_iter().map(|(name, kind)| BucketInfo { name, kind }).collect()
    }
}

fn build(name: &str, cfg: &BucketConfig) -> Result<Bucket, object_store::Error> {
    let (kind, store, local_root): (&'static str, Arc<dyn ObjectStore>, Option<PathBuf>) = match cfg {
        BucketConfig::Local { path } => {
            std::fs::create_dir_all(path)
                .map_err(|e| object_store::Error::Generic { store: "local", source: Box::new(e) })?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(path)?;
            ("local", Arc::new(store), Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())))
        }
        BucketConfig::Memory => ("memory", Arc::new(object_store::memory::InMemory::new()), None),
        BucketConfig::S3 { bucket, endpoint, region, access_key_id, secret_access_key, path_style, allow_http } => {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(region)
                .with_virtual_hosted_style_request(!path_style)
                .with_allow_http(*allow_http)
                .with_retry(retry());
            if let Some(e) = endpoint {
                b = b.with_endpoint(e);
            }
            if let (Some(k), Some(s)) = (access_key_id, secret_access_key) {
                b = b.with_access_key_id(k).with_secret_access_key(s);
            }
            ("s3", Arc::new(b.build()?), None)
        }
        BucketConfig::Gcs { bucket, service_account_path, endpoint, bearer_token, use_emulator } => {
            let mut b =
                object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket).with_retry(retry());
            if let Some(p) = service_account_path {
                b = b.with_service_account_path(p.to_string_lossy());
            }
            if let Some(e) = endpoint {
                b = b.with_base_url(e.trim_end_matches('/'));
            }
            if let Some(t) = bearer_token {
                b = b.with_bearer_token(t);
            }
            if *use_emulator {
                use object_store::{
                    ClientConfigKey, StaticCredentialProvider,
                    gcp::{GcpCredential, GoogleConfigKey},
                };
                if bearer_token.is_none() {
                    // No OAuth: an empty bearer token, as object_store's own
                    // `disable_oauth` does. (`skip_signature` is not enough: its
                    // uploads still ask the metadata server for a token.)
                    let none = StaticCredentialProvider::new(GcpCredential { bearer: String::new() });
                    b = b.with_credentials(Arc::new(none));
                }
                b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
            }
            ("gcs", Arc::new(b.build()?), None)
        }
        BucketConfig::Azure { account, container, access_key, endpoint, use_emulator } => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .with_retry(retry());
            let account = account.as_deref().or(use_emulator.then_some(AZURITE_ACCOUNT));
            if let Some(a) = account {
                b = b.with_account(a);
            }
            let access_key = access_key.as_deref().or(use_emulator.then_some(AZURITE_KEY));
            if let Some(k) = access_key {
                b = b.with_access_key(k);
            }
            let endpoint = match (endpoint, use_emulator) {
                // Azurite serves path-style URLs: the account is the first segment.
                // (object_store's own emulator mode takes its URL only from the
                // environment, so the same URLs are built here from the config.)
                (e, true) => {
                    let base = e
                        .clone()
                        .or_else(|| std::env::var("AZURITE_BLOB_STORAGE_URL").ok())
                        .unwrap_or_else(|| AZURITE_URL.into());
                    Some(format!("{}/{}", base.trim_end_matches('/'), account.unwrap_or(AZURITE_ACCOUNT)))
                }
                (e, false) => e.clone(),
            };
            if let Some(e) = endpoint {
                b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
            }
            ("azure", Arc::new(b.build()?), None)
        }
    };
    let local = local_root.map(|root| local::LocalDir::new(root, name.to_string()));
    Ok(Bucket { name: name.to_string(), kind, store, local })
}

/// Azurite's well-known development account, key and blob endpoint (public, from Microsoft's docs).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const AZURITE_URL: &str = "http://127.0.0.1:10000";

/// Transient store errors are retried with exponential backoff by the cloud clients.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
        backoff: object_store::BackoffConfig::default(),
    }
}

/// A key as an object_store path, refused if it would not round-trip.
pub fn store_path(key: &str) -> Result<StorePath, ObjectsError> {
    StorePath::parse(key).map_err(|e| ObjectsError::BadKey { key: key.to_string(), reason: e.to_string() })
}

impl Bucket {
    fn err(&self, key: &str, e: object_store::Error) -> ObjectsError {
        match e {
            object_store::Error::NotFound { .. } => {
                ObjectsError::NotFound { bucket: self.name.clone(), key: key.to_string() }
            }
            other => ObjectsError::Store { bucket: self.name.clone(), message: other.to_string() },
        }
    }

    fn meta(&self, m: object_store::ObjectMeta) -> ObjectMeta {
        ObjectMeta {
            bucket: self.name.clone(),
            key: m.location.to_string(),
            size: Some(m.size),
            content_type: None,
            etag: m.e_tag.map(|e| e.trim_matches('"').to_string()),
            last_modified: Some(m.last_modified.timestamp()),
        }
    }

    /// The object's metadata and its bytes as a stream.
    pub async fn open(&self, key: &str) -> Result<(ObjectMeta, InputSource), ObjectsError> {
        if let Some(local) = &self.local {
            return local.open(key).await;
        }
        let path = store_path(key)?;
        let got = self.store.get(&path).await.map_err(|e| self.err(key, e))?;
        let meta = self.meta(got.meta.clone());
        let size = got.meta.size;
        let bucket = self.name.clone();
        let stream =
            got.into_stream().map_err(move |e| std::io::Error::other(format!("bucket `{bucket}`: {e}"))).boxed();
        let ranged = Box::new(RangedGet { store: self.store.clone(), path, bucket: self.name.clone() });
        Ok((meta, InputSource::new(stream).with_random_access(size, ranged)))
    }

    /// The object's bytes from byte `offset` on, as a stream (a manifest read
    /// again after a restart starts where planning stopped).
    pub async fn read_from(
        &self,
        key: &str,
        offset: u64,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes, ObjectsError>>, ObjectsError> {
        let path = store_path(key)?;
        let options = object_store::GetOptions {
            range: (offset > 0).then_some(object_store::GetRange::Offset(offset)),
            ..Default::default()
        };
        let got = self.store.get_opts(&path, options).await.map_err(|e| self.err(key, e))?;
        let (bucket, key) = (self.name.clone(), key.to_string());
        Ok(got
            .into_stream()
            .map_err(move |e| ObjectsError::Store { bucket: bucket.clone(), message: format!("reading `{key}`: {e}") })
            .boxed())
    }

    /// Whether this machine reaches the bucket with its credentials: a
    /// missing object is an answer, a refusal or no answer is not.
    pub async fn probe(&self) -> Result<(), ObjectsError> {
        match self.head(".kiln-probe").await {
            Ok(_) | Err(ObjectsError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn head(&self, key: &str) -> Result<ObjectMeta, ObjectsError> {
        let path = store_path(key)?;
        self.store.head(&path).await.map(|m| self.meta(m)).map_err(|e| self.err(key, e))
    }

    /// Write a whole object (for uploads through the API and test fixtures).
    pub async fn put(&self, key: &str, bytes: bytes::Bytes) -> Result<(), ObjectsError> {
        let path = store_path(key)?;
        self.store.put(&path, bytes.into()).await.map(|_| ()).map_err(|e| self.err(key, e))
    }

    pub async fn get_bytes(&self, key: &str) -> Result<bytes::Bytes, ObjectsError> {
        let path = store_path(key)?;
        let got = self.store.get(&path).await.map_err(|e| self.err(key, e))?;
        got.bytes().await.map_err(|e| self.err(key, e))
    }

    /// Objects whose key starts with `prefix` and sorts after `after`, in
    /// key order, streamed: memory does not grow with the listing.
    pub fn list_from(&self, prefix: &str, after: Option<&str>) -> BoxStream<'static, Result<ObjectMeta, ObjectsError>> {
        if let Some(local) = &self.local {
            return local_list::sorted(
                local.root.clone(),
                self.name.clone(),
                prefix.to_string(),
                after.map(String::from),
            );
        }
        // Cloud stores and the memory store list in key order already.
        let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let dir_path = if dir.is_empty() { None } else { Some(StorePath::from(dir)) };
        let prefix_owned = prefix.to_string();
        let after_owned = after.map(String::from);
        let this = self.clone();
        let stream = match after {
            Some(a) => self.store.list_with_offset(dir_path.as_ref(), &StorePath::from(a)),
            None => self.store.list(dir_path.as_ref()),
        };
        stream
            .map(move |r| {
                r.map(|m| this.meta(m))
                    .map_err(|e| ObjectsError::Store { bucket: this.name.clone(), message: e.to_string() })
            })
            // Also `> after` here: a store that ignores the offset (Azurite
            // ignores `startFrom`) must not re-list what was planned already.
            .try_filter(move |m| {
                futures::future::ready(
                    m.key.starts_with(&prefix_owned) && after_owned.as_ref().is_none_or(|a| m.key > *a),
                )
            })
            .boxed()
    }

    /// A target that uploads a task's outputs to this bucket, at keys from `render`.
    pub fn target(&self, render: RenderKey) -> Box<dyn OutputTarget> {
        match &self.local {
            Some(local) => Box::new(local.target(render)),
            None => Box::new(BucketTarget::new(self.name.clone(), self.store.clone(), render)),
        }
    }
}

/// `read-at` on a cloud bucket: one ranged GET per call.
struct RangedGet {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    bucket: String,
}

#[async_trait::async_trait]
impl crate::runtime::RandomAccess for RangedGet {
    async fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<bytes::Bytes> {
        self.store
            .get_range(&self.path, offset..offset + len as u64)
            .await
            .map_err(|e| std::io::Error::other(format!("bucket `{}`: {e}", self.bucket)))
    }
}
