//! The local stack: everything the pipeline's state machines need, on 127.0.0.1, without an AWS
//! account or Docker — moto (the AWS API emulator, running real ASL in its execute mode) with
//! `infra/template.yaml` deployed into it, every deployed function run from `target/debug` with
//! the environment the stack gives it (`lambda_service`), and a local EC2 worker that runs each
//! instance's user data with bash in its own sandbox directory. How it works and how to debug a
//! run: docs/local-stack.md.
//!
//! ```no_run
//! # async fn example() -> Result<(), pipeline_tests::StackError> {
//! use pipeline_tests::{LocalStack, Options};
//! let mut stack = LocalStack::start(Options::default()).await?;
//! let machines = stack.register_state_machines("state-machines".as_ref()).await?;
//! let execution = stack.start_execution("hhvm-build", "run-1", &serde_json::json!({})).await?;
//! let outcome = stack
//!     .wait_for_execution(&execution, std::time::Duration::from_secs(600), |event| {
//!         eprintln!("{}", pipeline_tests::describe_event(event))
//!     })
//!     .await?;
//! stack.stop();
//! # Ok(()) }
//! ```

pub mod deploy;
mod events;
mod executions;
mod fixtures;
pub mod lambda_service;
pub mod machines;
pub mod progress;
pub mod published;
mod resources;
mod stack;
mod worker;

use std::fmt;

pub use executions::ExecutionOutcome;
pub use fixtures::{SigningKey, make_signing_key};
pub use machines::{
    ACCOUNT, REGION, describe_event, function_arn, function_placeholder, machine_name, machine_placeholder,
    state_machine_arn,
};
pub use progress::Progress;
pub use published::{Publication, apt_download, inspect_publication, verify_in_release};
pub use stack::{
    Invocation, LocalStack, Options, Settings, arm64_package_build, release_binary, release_build, workspace_binary,
    workspace_root,
};
pub use worker::WorkerRun;

/// Why the stack could not start, or an operation on it failed: a sentence naming what and
/// where (a missing tool, a process that did not come up and its log, an AWS call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackError(pub String);

impl StackError {
    pub fn new(message: impl Into<String>) -> StackError {
        StackError(message.into())
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StackError {}

impl From<pipeline_testing::HarnessError> for StackError {
    fn from(error: pipeline_testing::HarnessError) -> StackError {
        StackError(error.0)
    }
}

/// Adds what was being done to an error: `creating bucket hhvm-scratch: <the error and its sources>`.
pub(crate) trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T, StackError>;
}

impl<T, E: std::error::Error> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, StackError> {
        self.map_err(|error| {
            StackError(format!(
                "{what}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&error)
            ))
        })
    }
}
