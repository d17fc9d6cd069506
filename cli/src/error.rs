//! What can go wrong, and the exit status each gives (documented in the README's operator
//! section, which scripts rely on).

use std::process::ExitCode;

/// An error of a command: what happened, and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The execution (or a child of it) ended without success, or an invoked function answered
    /// with an error. Exit 1.
    #[error("{0}")]
    Failed(String),
    /// An argument is wrong in a way the argument parser cannot see (a version that is none).
    /// Exit 2, as for clap's own usage errors.
    #[error("{0}")]
    BadArgument(String),
    /// The stack, a machine, a function, an execution or a log could not be found. Exit 3.
    #[error("{0}")]
    NotFound(String),
    /// AWS refused or could not answer a call (credentials, network, throttling). Exit 4.
    #[error("{operation}: {message}")]
    Aws { operation: String, message: String },
}

impl CliError {
    /// The exit status: 1 failed run, 2 usage, 3 not found, 4 AWS.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Failed(_) => 1,
            CliError::BadArgument(_) => 2,
            CliError::NotFound(_) => 3,
            CliError::Aws { .. } => 4,
        })
    }

    /// An AWS call's error, with the SDK's whole chain of causes (the first line alone is often
    /// just "service error").
    pub fn aws(operation: &str, error: impl std::error::Error) -> CliError {
        CliError::Aws {
            operation: operation.to_string(),
            message: aws_smithy_types::error::display::DisplayErrorContext(&error).to_string(),
        }
    }
}

impl From<pipeline_core::PipelineError> for CliError {
    fn from(error: pipeline_core::PipelineError) -> CliError {
        match error.error_type() {
            "InvalidInput" | "InvalidVersion" => CliError::BadArgument(error.to_string()),
            _ => CliError::Aws {
                operation: error.error_type().to_string(),
                message: error.to_string(),
            },
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;
