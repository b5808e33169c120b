//! The WebAssembly runtime: one wasmtime [`Engine`] with a pooling allocator,
//! the linker that grants plugins exactly the contract plus the bits of WASI
//! that language runtimes need, the compile cache, and per-task limits.
//!
//! A [`Plugin`] is a loaded, checked and pre-instantiated component. Each task
//! instantiates it afresh from its `InstancePre` (microseconds with the pool),
//! streams the source through it, and commits its outputs only if it succeeds.
//!
//! This file is [`Runtime`]'s whole life, a little over 500 lines on purpose:
//! building the engine, loading a plugin, asking it `info` and `validate`, and
//! running a task read best in order; each piece they use is a module.

pub mod bindings;
mod cache;
mod config;
mod console;
mod errors;
mod exports;
mod heap;
mod host_impl;
mod host_v2;
mod info;
mod inspect;
mod lifted;
mod limits;
mod outcome;
mod streams;
mod text;
mod wasi;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use bindings::Contract;
pub use cache::CacheOutcome;
use cache::CompileCache;
pub use config::RuntimeConfig;
use config::pooling;
use console::ConsoleTail;
pub use errors::{LoadError, TaskError, TaskErrorKind};
use exports::ExportIndices;
pub use info::{ActionInfo, ParamInfo, PluginInfo, check_variable_name};
pub use lifted::{MAX_ITEMS as MAX_TEXT_ITEMS, MAX_LIFT as MAX_TEXT_CAP};
use limits::TaskLimiter;
pub use limits::{LimitCeilings, LimitHit, Limits};
pub use outcome::MAX_RESULT;
use outcome::{classify_trap, control_call, control_deadline_hit, task_result_of};
use streams::{InputHandle, OutputsHandle};
pub use streams::{InputSource, OutputSpec, OutputTarget, OutputWriter, RandomAccess};
pub use text::{TextLimits, bounded};
use wasi::{add_allowed_wasi, spawn_ticker};

/// Epoch tick: the granularity of deadlines, and how often a busy plugin
/// yields to the async executor so it cannot starve other tasks.
const TICK: Duration = Duration::from_millis(5);
/// Bytes handed to the plugin per `input.read`, at most.
const MAX_READ: u32 = 1 << 20;
/// Outputs one task may open.
const MAX_OUTPUTS: usize = 10_000;

/// The host: engine, linker, compile cache and epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<TaskState>,
    cache: Arc<CompileCache>,
    config: RuntimeConfig,
    ticker_stop: Arc<AtomicBool>,
    /// Verdicts of `validate`, by plugin digest and parameters: a style used
    /// by many jobs asks its plugin once, not at every job creation.
    verdicts: std::sync::Mutex<std::collections::HashMap<(String, String), Verdict>>,
    /// Names a plugin's output variables may not take: see [`Runtime::reserve_variables`].
    reserved_variables: Vec<String>,
    /// Where the runtime's measurements go: see [`Runtime::observed_by`].
    observer: Arc<dyn Observer>,
}

/// What the runtime measures as it works, for whoever keeps metrics (the
/// daemon's `/metrics`). The runtime keeps no figures of its own.
pub trait Observer: Send + Sync + 'static {
    /// A plugin was loaded: from the compile cache or compiled, in `took`.
    fn plugin_loaded(&self, _cache: CacheOutcome, _took: Duration) {}
    /// A plugin was instantiated for a task, in `took`.
    fn instantiated(&self, _took: Duration) {}
}

/// Measures nothing: the observer of a runtime nobody asked for figures.
struct Unobserved;
impl Observer for Unobserved {}

/// What `validate` said of a style: the extension it writes (0.2.0), or its refusal.
type Verdict = Result<Option<String>, String>;

/// Verdicts kept at most; the cache is emptied when it is full (it only saves calls).
const MAX_VERDICTS: usize = 4096;

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A loaded plugin, ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    /// What the plugin said of itself through `info()`.
    pub info: PluginInfo,
    /// Whether loading compiled the component or hit the cache.
    pub cache: CacheOutcome,
    /// Time to compile or load from the cache.
    pub load_time: Duration,
    pre: Pre,
    exports: ExportIndices,
}

/// A component pre-instantiated against the world of its contract version.
#[derive(Clone)]
enum Pre {
    V1(bindings::v1::ProcessorPre<TaskState>),
    V2(bindings::v2::ProcessorPre<TaskState>),
}

impl Pre {
    fn instance_pre(&self) -> &wasmtime::component::InstancePre<TaskState> {
        match self {
            Pre::V1(p) => p.instance_pre(),
            Pre::V2(p) => p.instance_pre(),
        }
    }

    fn contract(&self) -> Contract {
        match self {
            Pre::V1(_) => Contract::V1,
            Pre::V2(_) => Contract::V2,
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("sha256", &self.sha256)
            .field("info", &self.info)
            .field("cache", &self.cache)
            .finish()
    }
}

/// What the host knows about the source object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    /// Seconds since the Unix epoch.
    pub last_modified: Option<i64>,
}

/// One task to run: the plugin's parameters, the object, its bytes, where outputs go.
pub struct Task {
    pub params: String,
    pub object: ObjectMeta,
    pub input: InputSource,
    pub target: Box<dyn OutputTarget>,
    pub limits: Limits,
}

/// One committed output of a successful task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOutput {
    /// `{index}`: 1-based.
    pub index: u32,
    /// `{autoext}`, as declared by the plugin.
    pub extension: Option<String>,
    /// Where it went: a key or a path.
    pub location: String,
    pub bytes: u64,
}

/// The result of a successful task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub outputs: Vec<CommittedOutput>,
    /// What a 0.2.0 plugin returned from `process`: one JSON value.
    pub result: Option<serde_json::Value>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
}

/// Per-task store data: WASI context, resource table, limits and stream state.
pub(crate) struct TaskState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: TaskLimiter,
    /// A limit the host enforced (deadline, output); the memory one lives in `limiter`.
    hit: Option<LimitHit>,
    console: ConsoleTail,
    input: Option<InputSource>,
    target: Option<Box<dyn OutputTarget>>,
    outputs: Vec<OpenOutput>,
    bytes_out: u64,
    max_output: u64,
    /// An I/O failure on the host side (source read, upload): the task fails even
    /// if the plugin ignores the error it was given.
    host_error: Option<String>,
    log_lines: u32,
    text: TextLimits,
    /// The host refused an `outputs.open`: the task fails even if the plugin
    /// goes on and returns `ok`, since it could not write all it meant to.
    open_refused: Option<String>,
    /// Bytes the task may read from its source in all (`None`: its size is unknown).
    read_cap: Option<u64>,
    /// Output variables the plugin declares (0.2.0).
    declared_variables: Arc<[String]>,
    plugin: Arc<str>,
    key: Arc<str>,
}

struct OpenOutput {
    writer: Option<Box<dyn OutputWriter>>,
    extension: Option<String>,
    bytes: u64,
}

impl wasmtime_wasi_io::IoView for TaskState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        wasm.max_wasm_stack(config.max_stack);
        wasm.wasm_component_model(true);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(&config)));
        let engine = Engine::new(&wasm).map_err(|e| anyhow::anyhow!("configuring wasmtime: {e:#}"))?;

        let mut linker: Linker<TaskState> = Linker::new(&engine);
        add_allowed_wasi(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // Both contract versions, side by side: their interfaces carry their versions.
        bindings::v1::Processor::add_to_linker::<TaskState, HasSelf<TaskState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::v2::Processor::add_to_linker::<TaskState, HasSelf<TaskState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        host_impl::link_bounded_imports(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        host_v2::link_bounded_imports(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), ticker_stop.clone());
        let cache = Arc::new(CompileCache::new(&engine, config.cache_dir.clone()));
        Ok(Runtime {
            engine,
            linker,
            cache,
            config,
            ticker_stop,
            verdicts: Default::default(),
            reserved_variables: Vec::new(),
            observer: Arc::new(Unobserved),
        })
    }

    /// Refuse plugins that declare an output variable (contract 0.2.0) named
    /// like one of `names`: the host's template's own variables, which a
    /// plugin's must not hide. None by default.
    pub fn reserve_variables<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Runtime {
        self.reserved_variables = names.into_iter().map(Into::into).collect();
        self
    }

    /// The names set by [`Runtime::reserve_variables`].
    pub fn reserved_variables(&self) -> &[String] {
        &self.reserved_variables
    }

    /// Report what the runtime measures to `observer`; nowhere by default.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Runtime {
        self.observer = observer;
        self
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Check, compile (or load from the cache) and pre-instantiate a plugin,
    /// then ask it for its `info()` under the control deadline.
    /// The checks of [`Runtime::load`] that need no compile: size, a component,
    /// and only the imports Kiln provides. Milliseconds, even for a large component.
    pub fn precheck(&self, wasm: &[u8]) -> Result<(), LoadError> {
        inspect::check_bytes(wasm, self.config.max_plugin_size)?;
        inspect::check_imports(inspect::top_level_imports(wasm)?.iter().map(String::as_str))
    }

    /// Whether the compile cache holds this component (by hex SHA-256).
    pub fn is_compiled(&self, sha256: &str) -> bool {
        self.cache.has(sha256)
    }

    pub async fn load(&self, wasm: &[u8]) -> Result<Plugin, LoadError> {
        self.load_with(wasm, None).await
    }

    /// [`Runtime::load`] for a plugin whose `info()` is already recorded (an
    /// upload reloaded at start): the plugin is not called, so becoming ready
    /// never waits on what a plugin does.
    pub async fn reload(&self, wasm: &[u8], info: PluginInfo) -> Result<Plugin, LoadError> {
        self.load_with(wasm, Some(info)).await
    }

    async fn load_with(&self, wasm: &[u8], known_info: Option<PluginInfo>) -> Result<Plugin, LoadError> {
        inspect::check_bytes(wasm, self.config.max_plugin_size)?;
        let sha256 = hex::encode(Sha256::digest(wasm));
        let started = Instant::now();
        let (component, cache) = {
            let (engine, cache, wasm, sha) = (self.engine.clone(), self.cache.clone(), wasm.to_vec(), sha256.clone());
            // Compiling is CPU-bound for up to a second: keep it off the executor.
            tokio::task::spawn_blocking(move || cache.load_or_compile(&engine, &wasm, &sha))
                .await
                .map_err(|e| LoadError::Invalid(e.to_string()))?
                .map_err(|e| LoadError::Invalid(format!("{e:#}")))?
        };
        let load_time = started.elapsed();
        self.observer.plugin_loaded(cache, load_time);
        // Types and resources the world `use`s appear as imports too; only
        // instances and functions give a plugin capabilities.
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .filter(|(_, ext)| !matches!(ext.ty, ComponentItem::Type(_) | ComponentItem::Resource(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        inspect::check_imports(imports.iter().map(String::as_str))?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        // The version is the one whose world the component fits: its imports
        // name their interfaces' versions (`kiln:plugin/types@0.2.0`).
        let pre = if imports.iter().any(|i| i.starts_with("kiln:plugin/") && i.ends_with("@0.2.0")) {
            Pre::V2(bindings::v2::ProcessorPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?)
        } else {
            Pre::V1(bindings::v1::ProcessorPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?)
        };
        let exports = ExportIndices::find(&component)
            .ok_or_else(|| LoadError::WrongWorld("it does not export `info`, `validate` and `process`".into()))?;

        let mut plugin = Plugin { sha256, info: PluginInfo::default_unknown(), cache, load_time, pre, exports };
        plugin.info = match known_info {
            // A record written before the caps existed may hold anything.
            Some(info) => PluginInfo { contract: plugin.pre.contract(), ..info.bounded(&self.config.text) },
            None => self.call_info(&plugin).await?,
        };
        Ok(plugin)
    }

    async fn call_info(&self, plugin: &Plugin) -> Result<PluginInfo, LoadError> {
        let limits = self.control_limits();
        let mut store = self.new_store(plugin, &limits, "(info)", None, None);
        let call = async {
            let instance = plugin.pre.instance_pre().instantiate_async(&mut store).await?;
            let (caps, contract) = (&self.config.text, plugin.pre.contract());
            exports::info(&mut store, &instance, &plugin.exports, caps, &self.reserved_variables, contract).await
        };
        tokio::time::timeout(limits.deadline + TICK * 20, call)
            .await
            .map_err(|_| LoadError::Info(control_deadline_hit(limits.deadline)))?
            .map_err(|e| LoadError::Info(classify_trap(e, control_call(&mut store), &self.config).to_string()))
    }

    /// Ask the plugin whether `params` are valid. `Ok(Err(msg))` is the plugin's refusal.
    pub async fn validate(&self, plugin: &Plugin, params: &str) -> Result<Result<(), String>, TaskError> {
        Ok(self.validate_style(plugin, params).await?.map(|_| ()))
    }

    /// [`Runtime::validate`], with the extension a 0.2.0 style says its outputs have.
    pub async fn validate_style(
        &self,
        plugin: &Plugin,
        params: &str,
    ) -> Result<Result<Option<String>, String>, TaskError> {
        let key = (plugin.sha256.clone(), params.to_string());
        if let Some(verdict) = self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(verdict.clone());
        }
        let verdict = self.call_validate(plugin, params).await?;
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if verdicts.len() >= MAX_VERDICTS {
            verdicts.clear();
        }
        verdicts.insert(key, verdict.clone());
        Ok(verdict)
    }

    async fn call_validate(&self, plugin: &Plugin, params: &str) -> Result<Result<Option<String>, String>, TaskError> {
        let limits = self.control_limits();
        let mut store = self.new_store(plugin, &limits, "(validate)", None, None);
        let call = async {
            let instance = plugin.pre.instance_pre().instantiate_async(&mut store).await?;
            let contract = plugin.pre.contract();
            exports::validate(&mut store, &instance, &plugin.exports, &self.config.text, contract, params).await
        };
        match tokio::time::timeout(limits.deadline + TICK * 20, call).await {
            Err(_) => Err(TaskError::limit(LimitHit::ControlDeadline(limits.deadline), String::new())),
            Ok(Ok(verdict)) => Ok(verdict),
            Ok(Err(trap)) => Err(classify_trap(trap, control_call(&mut store), &self.config)),
        }
    }

    /// The limits of an `info()` or `validate()` call: the task limits with the control deadline.
    fn control_limits(&self) -> Limits {
        Limits { deadline: self.config.control_deadline, ..self.config.limits }
    }

    /// Run one task: instantiate, stream the input through `process`, then
    /// commit every output if it succeeded, or abort them all if it did not.
    pub async fn run(&self, plugin: &Plugin, task: Task) -> Result<TaskOutcome, TaskError> {
        let started = Instant::now();
        let Task { params, object, input, target, limits } = task;
        let limits = self.clamp(limits);
        let size = input.size().or(object.size);
        let mut store = self.new_store(plugin, &limits, &object.key, Some(input), Some(target));
        store.data_mut().read_cap =
            size.map(|s| s.saturating_mul(limits.read_factor.max(1)).saturating_add(limits::READ_SLACK));
        let wit_object = bindings::ObjectInfo {
            bucket: object.bucket,
            key: object.key,
            size: object.size,
            content_type: object.content_type,
            etag: object.etag,
            last_modified: object.last_modified,
        };
        let call = async {
            let instantiating = Instant::now();
            let instance = plugin.pre.instance_pre().instantiate_async(&mut store).await?;
            self.observer.instantiated(instantiating.elapsed());
            let input: Resource<InputHandle> = store.data_mut().table.push(InputHandle)?;
            let outputs: Resource<OutputsHandle> = store.data_mut().table.push(OutputsHandle)?;
            let args =
                (params.as_str(), &wit_object, Resource::new_borrow(input.rep()), Resource::new_borrow(outputs.rep()));
            let contract = plugin.pre.contract();
            exports::process(&mut store, &instance, &plugin.exports, &self.config.text, contract, args).await
        };
        // The epoch deadline stops guest code; this also bounds time spent
        // awaiting host I/O (a stalled object store) on the plugin's behalf.
        let result = tokio::time::timeout(limits.deadline + TICK * 20, call).await;
        let state = store.data_mut();
        let mut task_result = None;
        let error = match result {
            Err(_) => Some(TaskError::limit(LimitHit::Deadline(limits.deadline), state.console.text())),
            Ok(Err(trap)) => Some(classify_trap(trap, state, &self.config)),
            Ok(Ok(Err(process_error))) => Some(TaskError::from_plugin(process_error, state.console.text())),
            Ok(Ok(Ok(returned))) => state.host_error.clone().map(TaskError::Io).or_else(|| {
                state.open_refused.clone().map(|refusal| TaskError::Failed {
                    message: format!(
                        "the plugin returned `ok` after the host refused to open an output ({refusal}): its result would be incomplete"
                    ),
                    console: state.console.text(),
                })
            }).or_else(|| match returned.map(|r| task_result_of(&r)) {
                Some(Err(e)) => Some(e),
                Some(Ok(value)) => {
                    task_result = Some(value);
                    None
                }
                None => None,
            }),
        };
        let outputs = std::mem::take(&mut state.outputs);
        if let Some(error) = error {
            for out in outputs {
                if let Some(writer) = out.writer {
                    writer.abort().await;
                }
            }
            return Err(error);
        }
        let mut committed = Vec::with_capacity(outputs.len());
        let mut failed = None;
        for (i, out) in outputs.into_iter().enumerate() {
            let Some(writer) = out.writer else { continue };
            if failed.is_some() {
                writer.abort().await;
                continue;
            }
            match writer.commit().await {
                Ok(location) => committed.push(CommittedOutput {
                    index: i as u32 + 1,
                    extension: out.extension,
                    location,
                    bytes: out.bytes,
                }),
                Err(e) => failed = Some(TaskError::Io(format!("committing output {}: {e}", i + 1))),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let state = store.data();
        Ok(TaskOutcome {
            outputs: committed,
            bytes_in: state.input.as_ref().map_or(0, |i| i.consumed),
            bytes_out: state.bytes_out,
            duration: started.elapsed(),
            result: task_result,
        })
    }

    /// Per-task limits never exceed the engine's: the pool's slots are sized by them.
    fn clamp(&self, limits: Limits) -> Limits {
        Limits { max_memory: limits.max_memory.min(self.config.limits.max_memory), ..limits }
    }

    fn new_store(
        &self,
        plugin: &Plugin,
        limits: &Limits,
        key: &str,
        input: Option<InputSource>,
        target: Option<Box<dyn OutputTarget>>,
    ) -> Store<TaskState> {
        let console = ConsoleTail::new(limits.max_console);
        // No preopened dirs, no environment, no arguments, no network: the
        // builder grants none of them unless asked.
        let wasi = WasiCtxBuilder::new().stdout(console.clone()).stderr(console.clone()).build();
        let state = TaskState {
            wasi,
            table: ResourceTable::new(),
            limiter: TaskLimiter { max_memory: limits.max_memory, hit: None },
            hit: None,
            console,
            input,
            target,
            outputs: Vec::new(),
            bytes_out: 0,
            max_output: limits.max_output,
            host_error: None,
            log_lines: 0,
            text: self.config.text,
            open_refused: None,
            read_cap: None,
            declared_variables: Arc::from(plugin.info.variables.clone()),
            plugin: Arc::from(plugin.info.name.as_str()),
            key: Arc::from(key),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let deadline = Instant::now() + limits.deadline;
        let budget = limits.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            if Instant::now() >= deadline {
                ctx.data_mut().hit = Some(LimitHit::Deadline(budget));
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Yield to the executor at every tick so a spinning plugin
                // shares the worker thread with other tasks.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}
