//! Dry run: what a job would do, without processing anything or storing a job.
//!
//! After every creation check (the same errors as a real create), the
//! selection is read as the planner would read it: a listing page by page, a
//! manifest line by line, explicit keys one by one (manifest and explicit
//! keys are looked up with a HEAD each, 16 at a time, for their size and
//! metadata). Each object's first output key is rendered, and the result tells
//! the count and bytes, a sample of `{source, output}`, output keys that two
//! sources would both write (collisions), keys outside the role's grants, and
//! keys whose rendered output breaks a path rule.
//!
//! Memory: the collision check keeps one entry (output key → source key) per
//! object, for at most [`MAX_TRACKED`] objects; past that, `truncated` is set
//! and later objects are counted and checked but not tracked for collisions.
//! Each list in the answer holds at most [`MAX_LISTED`] entries beside its full count.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Access, Principal};
use crate::model::{JobSpec, now};
use crate::objects::ObjectsError;
use crate::runtime::ObjectMeta;
use crate::select::{PageError, Pager};
use crate::template::Vars;

use super::{JobError, Jobs, Prepared};

/// Rendered outputs in the sample.
pub const SAMPLE: usize = 20;
/// Objects whose output keys are tracked for collisions.
pub const MAX_TRACKED: usize = 100_000;
/// Entries per list of the answer.
pub const MAX_LISTED: usize = 100;
/// HEAD requests in flight for explicit keys and manifest entries.
const HEADS_IN_FLIGHT: usize = 16;
/// Listed keys (or manifest lines) per page.
const PAGE: usize = 1000;
/// What `{jobid}` renders as in a dry run: no id is given out.
pub const DRY_RUN_JOBID: &str = "dry-run";

/// What a job would do.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DryRun {
    pub dry_run: bool,
    /// Objects selected (after the filters).
    pub objects: u64,
    /// Their total size in bytes (objects whose size is unknown count 0).
    pub bytes: u64,
    /// The extension `{autoext}` was rendered with: the one the style wrote
    /// for the first object (see `autoext_probed`), else the plugin's first
    /// declared output format, or `null` for each source's own extension.
    pub autoext: Option<String>,
    /// The plugin declares several output formats, so the style was run once
    /// on the first selected object to learn which one it writes: its output
    /// was refused at the first write, and nothing was stored.
    #[serde(default)]
    pub autoext_probed: bool,
    /// The style wrote no output for the first object (it answers with the
    /// task's result): the sample keys are what it would write, were it to.
    #[serde(default)]
    pub no_output: bool,
    /// The first objects and the key of their first output.
    pub sample: Vec<SampleOutput>,
    /// Output keys that more than one source would write.
    pub collisions: Vec<Collision>,
    /// How many output keys collide (the list above holds at most 100).
    pub collision_count: u64,
    /// Sources the role may not read, or outputs it may not write.
    pub outside_grants: Vec<GrantProblem>,
    pub outside_grants_count: u64,
    /// Sources whose output key breaks a path rule (the task would fail).
    pub path_rule_violations: Vec<PathProblem>,
    pub path_rule_violation_count: u64,
    /// Explicit keys or manifest entries that cannot be read (the task would fail).
    pub missing: Vec<PathProblem>,
    pub missing_count: u64,
    /// More than 100,000 objects: collisions were looked for among the first 100,000 only.
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SampleOutput {
    pub source: String,
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Collision {
    pub output: String,
    /// The sources that render to it (at most 10 shown).
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantProblem {
    pub bucket: String,
    pub key: String,
    /// `read` (a source) or `write` (an output).
    pub access: String,
    pub source: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PathProblem {
    pub source: String,
    pub error: String,
}

/// Adds one object at a time to the answer.
struct Tally<'a> {
    prepared: &'a Prepared,
    task_time: i64,
    autoext: Option<String>,
    /// The plugin's `validate` named the extension: no need to run it.
    said: bool,
    /// Output variables render as `1` in a dry run: their values come from the plugin, per object.
    sample_outputs: Vec<(String, String)>,
    out: DryRun,
    /// Output key → the first source that renders to it.
    seen: HashMap<String, String>,
    /// Colliding outputs shown, with their sources.
    shown: BTreeMap<String, Vec<String>>,
}

impl Tally<'_> {
    /// When the plugin declares more than one output format, which one the
    /// style writes is known only by running it: run it once on `key` with
    /// outputs that refuse to open, and take the extension of the first.
    async fn probe(&mut self, jobs: &Jobs, key: &str) {
        // A 0.2.0 plugin whose `validate` named no extension: it depends on
        // the object, or the style writes nothing (its answer is the task's
        // result). A 0.1.0 plugin that declares several formats: which one.
        let v2 = self.prepared.plugin.info.contract == crate::runtime::Contract::V2;
        if self.said || (!v2 && self.prepared.plugin.info.writes.len() < 2) {
            return;
        }
        // Only what the job itself could read.
        let spec = &self.prepared.spec;
        if let Some(role) = &self.prepared.role
            && (!super::listed_under_role(spec, Some(role), key)
                || role.allows(&spec.input.bucket, key, Access::Read).is_err())
        {
            return;
        }
        let Ok((object, input)) = self.prepared.input.open(key).await else { return };
        let opened = std::sync::Arc::new(std::sync::Mutex::new(None));
        let task = crate::runtime::Task {
            params: self.prepared.params.clone(),
            object,
            input,
            target: Box::new(Probe(opened.clone())),
            limits: self.prepared.limits,
        };
        // The task fails at its first output by design; only the extension matters.
        let ran = jobs.runtime().run(&self.prepared.plugin, task).await;
        let first: Option<Option<String>> = opened.lock().expect("not poisoned").take();
        if v2 && first.is_some() {
            // It writes, with an extension that depends on the object (its
            // `validate` said so): each source's own stands for it.
            return;
        }
        if let Some(extension) = first {
            self.autoext = extension.map(|e| e.trim_start_matches('.').to_string()).filter(|e| !e.is_empty());
            self.out.autoext_probed = true;
        } else if ran.is_ok() {
            // It succeeded without opening an output.
            self.out.no_output = true;
            self.out.autoext_probed = true;
        }
    }

    fn add(&mut self, o: &ObjectMeta) {
        let spec = &self.prepared.spec;
        // As the job would: a listing sees only what the role may read.
        if !super::listed_under_role(spec, self.prepared.role.as_ref(), &o.key) {
            return;
        }
        let role = self.prepared.role.as_ref();
        if let Some(Err(e)) = role.map(|r| r.allows(&spec.input.bucket, &o.key, Access::Read)) {
            self.grant_problem(&spec.input.bucket, &o.key, "read", &o.key, e.to_string());
            return;
        }
        // Counted only once the caller may read it: a count or a size is
        // itself something learnt about the object.
        self.out.objects += 1;
        self.out.bytes += o.size.unwrap_or(0);
        let vars = Vars {
            bucket: &o.bucket,
            key: &o.key,
            etag: o.etag.as_deref(),
            last_modified: o.last_modified,
            task_time: self.task_time,
            index: 1,
            autoext: self.autoext.as_deref(),
            jobid: DRY_RUN_JOBID,
            tags: &spec.tags,
            outputs: &self.sample_outputs,
        };
        let output = match self.prepared.template.render(&vars) {
            Ok(k) if spec.output.bucket == spec.input.bucket && k == o.key => {
                self.path_problem(&o.key, format!("renders `{k}`, its own key: it would overwrite its source"));
                return;
            }
            Ok(k) => k,
            Err(e) => {
                self.path_problem(&o.key, e.to_string());
                return;
            }
        };
        if let Some(Err(e)) = role.map(|r| r.allows(&spec.output.bucket, &output, Access::Write)) {
            self.grant_problem(&spec.output.bucket, &output, "write", &o.key, e.to_string());
            return;
        }
        if self.out.sample.len() < SAMPLE {
            self.out.sample.push(SampleOutput { source: o.key.clone(), output: output.clone() });
        }
        match self.seen.get(&output) {
            Some(first) if *first == o.key => {
                // The same key listed twice (a manifest): planned once.
                self.out.objects -= 1;
                self.out.bytes -= o.size.unwrap_or(0);
            }
            Some(first) => {
                let first = first.clone();
                if let Some(sources) = self.shown.get_mut(&output) {
                    if sources.len() < 10 {
                        sources.push(o.key.clone());
                    }
                } else {
                    self.out.collision_count += 1;
                    if self.shown.len() < MAX_LISTED {
                        self.shown.insert(output, vec![first, o.key.clone()]);
                    }
                }
            }
            None if self.seen.len() < MAX_TRACKED => {
                self.seen.insert(output, o.key.clone());
            }
            None => self.out.truncated = true,
        }
    }

    fn grant_problem(&mut self, bucket: &str, key: &str, access: &str, source: &str, error: String) {
        self.out.outside_grants_count += 1;
        if self.out.outside_grants.len() < MAX_LISTED {
            let p = GrantProblem {
                bucket: bucket.into(),
                key: key.into(),
                access: access.into(),
                source: source.into(),
                error,
            };
            self.out.outside_grants.push(p);
        }
    }

    fn path_problem(&mut self, source: &str, error: String) {
        self.out.path_rule_violation_count += 1;
        if self.out.path_rule_violations.len() < MAX_LISTED {
            self.out.path_rule_violations.push(PathProblem { source: source.into(), error });
        }
    }

    fn missing(&mut self, source: &str, error: String) {
        self.out.missing_count += 1;
        if self.out.missing.len() < MAX_LISTED {
            self.out.missing.push(PathProblem { source: source.into(), error });
        }
    }

    /// Look keys up (a HEAD each, a few at a time) and add those found. A key
    /// the role may not read is reported as outside the grants and never
    /// looked up, so whether it exists stays unknown to the caller.
    async fn add_keys(&mut self, keys: Vec<String>) -> Result<(), JobError> {
        let (spec, role) = (&self.prepared.spec, self.prepared.role.as_ref());
        let mut readable = Vec::with_capacity(keys.len());
        for key in keys {
            match role.map(|r| r.allows(&spec.input.bucket, &key, Access::Read)) {
                Some(Err(e)) => {
                    let bucket = spec.input.bucket.clone();
                    self.grant_problem(&bucket, &key, "read", &key, e.to_string());
                }
                _ => readable.push(key),
            }
        }
        let keys = readable;
        let bucket = &self.prepared.input;
        let mut heads =
            futures::stream::iter(keys).map(|k| async move { (bucket.head(&k).await, k) }).buffered(HEADS_IN_FLIGHT);
        while let Some((head, key)) = heads.next().await {
            match head {
                Ok(meta) => self.add(&meta),
                Err(e @ (ObjectsError::NotFound { .. } | ObjectsError::BadKey { .. })) => {
                    self.missing(&key, e.to_string())
                }
                Err(e) => return Err(JobError::Upstream(format!("reading `{key}`: {e}"))),
            }
        }
        Ok(())
    }

    fn finish(mut self) -> DryRun {
        self.out.dry_run = true;
        self.out.autoext = self.autoext;
        self.out.collisions = self.shown.into_iter().map(|(output, sources)| Collision { output, sources }).collect();
        self.out
    }
}

fn page_error(e: PageError) -> JobError {
    match e {
        PageError::Manifest(m) => JobError::Invalid { field: "input.manifest", message: m.to_string() },
        PageError::Invalid(s) => JobError::Invalid { field: s.field(), message: s.to_string() },
        other => JobError::Upstream(other.to_string()),
    }
}

impl Jobs {
    /// What creating `spec` would do, without doing it: every creation check
    /// first (same errors), then the selection as the planner would see it.
    /// Nothing is stored; the tenant's `running_jobs` quota does not apply.
    pub async fn dry_run(&self, caller: &Principal, spec: JobSpec) -> Result<DryRun, JobError> {
        let prepared = super::prepare::prepare(&spec, caller.tenant(), &self.prepare_context()).await?;
        self.check_at_creation(&spec).await?;
        // A 0.2.0 plugin's `validate` may say which extension the style writes.
        let said = match self.runtime().validate_style(&prepared.plugin, &prepared.params).await {
            Ok(Ok(said)) => said,
            _ => None,
        };
        // 0.2.0's `validate` says the extension, or that it depends on the
        // object (then each source's own stands for it); for 0.1.0, the first
        // format the plugin declares (a probe may correct it).
        let autoext = if prepared.plugin.info.contract == crate::runtime::Contract::V2 {
            said.clone()
        } else {
            prepared.plugin.info.writes.first().map(|e| e.trim_start_matches('.').to_string()).filter(|e| !e.is_empty())
        };
        let mut tally = Tally {
            prepared: &prepared,
            task_time: now(),
            autoext,
            out: DryRun::default(),
            said: said.is_some(),
            sample_outputs: prepared.plugin.info.variables.iter().map(|v| (v.clone(), "1".into())).collect(),
            seen: HashMap::new(),
            shown: BTreeMap::new(),
        };
        if !spec.input.keys.is_empty() {
            tally.probe(self, &spec.input.keys[0]).await;
            for chunk in spec.input.keys.chunks(PAGE) {
                tally.add_keys(chunk.to_vec()).await?;
            }
            return Ok(tally.finish());
        }
        let mut pager = Pager::open(&self.inner.buckets, &spec, None, PAGE).await.map_err(page_error)?;
        let manifest = spec.input.manifest.is_some();
        let mut probed = false;
        loop {
            let page = pager.next_page().await.map_err(page_error)?;
            if !probed && let Some(first) = page.objects.first() {
                probed = true;
                tally.probe(self, &first.key).await;
            }
            if manifest {
                tally.add_keys(page.objects.into_iter().map(|o| o.key).collect()).await?;
            } else {
                for o in &page.objects {
                    tally.add(o);
                }
            }
            if page.done {
                return Ok(tally.finish());
            }
        }
    }
}

/// The outputs of a dry run's probe: the first `open` is recorded and refused.
struct Probe(std::sync::Arc<std::sync::Mutex<Option<Option<String>>>>);

#[async_trait::async_trait]
impl crate::runtime::OutputTarget for Probe {
    async fn open(
        &mut self,
        _index: u32,
        extension: Option<&str>,
    ) -> Result<Box<dyn crate::runtime::OutputWriter>, String> {
        self.0.lock().expect("not poisoned").get_or_insert(extension.map(str::to_string));
        Err("a dry run writes nothing".into())
    }
}
