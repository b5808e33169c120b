// mimalloc: per-thread free lists suit the daemon's many small allocations
// made on one thread and freed on another (tokio's pool, the blocking pool);
// glibc malloc spent about 12% of a busy coordinator's CPU (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kiln::cli::main()
}
