//! The `maestro` binary: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    maestro::cli::run(maestro::cli::Cli::parse())
}
