//! The `maestro` binary: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

// The request path allocates many small objects (parsed JSON, headers); mimalloc serves them
// markedly cheaper than the system allocator under load (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    maestro::cli::run(maestro::cli::Cli::from_env())
}
