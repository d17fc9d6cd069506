//! `hhvmctl`, the operator's command line: starts the pipeline's machines with correctly built
//! input and readable names, follows them live (phases, each distro's worker, children), and
//! inspects and resumes failed runs. It finds everything through the deployed stack, with the
//! standard AWS configuration, so it works the same against AWS and the local stack.

pub mod args;
pub mod commands;
pub mod deployment;
pub mod display;
pub mod error;
pub mod history;
pub mod index_pages;
pub mod plan;
pub mod requests;
pub mod status;
pub mod version_status;

pub use args::Cli;
pub use error::{CliError, CliResult};

/// Logs on stderr: warnings by default, `-v` what the command does, `-vv` the SDK's calls too;
/// `RUST_LOG` overrides.
pub fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "hhvmctl=info,warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
