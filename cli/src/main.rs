use std::process::ExitCode;

use clap::Parser;
use hhvmctl::commands::{Clients, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = hhvmctl::Cli::parse();
    hhvmctl::init_tracing(cli.verbose);
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    match run(cli, &Clients::new(&config)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hhvmctl: {error}");
            error.exit_code()
        }
    }
}
