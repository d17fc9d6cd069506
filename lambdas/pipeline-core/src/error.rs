//! The one error type of the pipeline. Each variant has a stable `errorType` name: it is what
//! Step Functions' `ErrorEquals` matches and what operators see, so names never change once
//! published (they are listed in the README).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// A payload field is missing, has the wrong JSON type, or has a value we refuse.
    #[error("invalid input field `{field}`: {problem}")]
    InvalidInput { field: String, problem: String },

    /// A version string is neither a nightly `YYYY.MM.DD` (a real date) nor a release `x.y.z`.
    #[error("invalid version {value:?}: {problem}")]
    InvalidVersion { value: String, problem: String },

    /// The source tarball is not where the version says it should be, or not all of it is: the
    /// tarball, its signature, its checksums and the source job's success marker (`missing`
    /// names the first one absent).
    #[error("{}", source_tarball_not_found(location, missing))]
    SourceTarballNotFound { location: String, missing: String },

    /// An AWS call failed for a reason that may pass (throttling after the SDK's retries, a
    /// 5xx, the network, a time-out): the machines retry it.
    #[error("{operation} failed: {detail}")]
    AwsServiceError { operation: String, detail: String },

    /// AWS refused the request for a reason a retry does not change (a 4xx such as
    /// `AccessDenied` or a validation error): the machines do not retry it.
    #[error("{operation} was refused: {detail}")]
    AwsRequestRefused { operation: String, detail: String },

    /// The list of distros to build could not be read from the packaging repository.
    #[error("could not read CURRENT_TARGETS from {url}: {problem}")]
    CurrentTargetsUnavailable { url: String, problem: String },

    /// The nightly source's branch head could not be read (`hhvm-start-nightly`).
    #[error("could not read the source's refs from {url}: {problem}")]
    SourceUnavailable { url: String, problem: String },

    /// The function's environment is missing a variable or holds an unusable value.
    #[error("configuration variable {variable}: {problem}")]
    Configuration { variable: String, problem: String },

    /// A child execution of this name exists with a different input: a retry would not be
    /// the same request, so nothing is started.
    #[error("execution {name:?} already exists: {problem}")]
    ExecutionAlreadyExists { name: String, problem: String },

    /// A CloudFront invalidation with this caller reference exists for different paths.
    #[error("invalidation {caller_reference:?} already exists: {problem}")]
    InvalidationAlreadyExists { caller_reference: String, problem: String },

    /// Artifacts of a version that had to be built have no success marker (their job failed,
    /// or never ran). The message names each, with its worker's log when there is one.
    #[error("{version} did not build: {details}")]
    BuildFailed { version: String, details: String },

    /// Artifacts of a version that had to be published are not in the download bucket.
    #[error("{version} is not published: {details}")]
    PublishFailed { version: String, details: String },

    /// An EC2 worker could not be launched (after the SDK's retries); the instances the same
    /// call had already started were terminated. `target` is the distro or the job kind.
    #[error("could not launch the worker for {target}: {detail}")]
    WorkerLaunchFailed { target: String, detail: String },
}

/// `SourceTarballNotFound`'s message: the tarball itself missing, or the first part of its set
/// that is.
fn source_tarball_not_found(location: &str, missing: &str) -> String {
    if missing == location {
        format!("source tarball {location} is missing (build-source-tarball creates it)")
    } else {
        format!(
            "source tarball {location} is incomplete: {missing} is missing (build-source-tarball creates all of it)"
        )
    }
}

impl PipelineError {
    /// The stable name state machines match in `ErrorEquals`.
    pub fn error_type(&self) -> &'static str {
        match self {
            PipelineError::InvalidInput { .. } => "InvalidInput",
            PipelineError::InvalidVersion { .. } => "InvalidVersion",
            PipelineError::SourceTarballNotFound { .. } => "SourceTarballNotFound",
            PipelineError::AwsServiceError { .. } => "AwsServiceError",
            PipelineError::AwsRequestRefused { .. } => "AwsRequestRefused",
            PipelineError::CurrentTargetsUnavailable { .. } => "CurrentTargetsUnavailable",
            PipelineError::Configuration { .. } => "ConfigurationError",
            PipelineError::SourceUnavailable { .. } => "SourceUnavailable",
            PipelineError::ExecutionAlreadyExists { .. } => "ExecutionAlreadyExists",
            PipelineError::InvalidationAlreadyExists { .. } => "InvalidationAlreadyExists",
            PipelineError::WorkerLaunchFailed { .. } => "WorkerLaunchFailed",
            PipelineError::BuildFailed { .. } => "BuildFailed",
            PipelineError::PublishFailed { .. } => "PublishFailed",
        }
    }

    pub fn invalid_input(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        PipelineError::InvalidInput {
            field: field.into(),
            problem: problem.to_string(),
        }
    }

    pub fn invalid_version(value: impl Into<String>, problem: impl fmt::Display) -> Self {
        PipelineError::InvalidVersion {
            value: value.into(),
            problem: problem.to_string(),
        }
    }

    pub fn aws(operation: impl Into<String>, detail: impl fmt::Display) -> Self {
        PipelineError::AwsServiceError {
            operation: operation.into(),
            detail: detail.to_string(),
        }
    }

    pub fn configuration(variable: impl Into<String>, problem: impl fmt::Display) -> Self {
        PipelineError::Configuration {
            variable: variable.into(),
            problem: problem.to_string(),
        }
    }

    /// The same error, blamed on a field of the payload (a version read from `versions[2]`
    /// names that element).
    pub fn in_field(self, field: &str) -> Self {
        match self {
            PipelineError::InvalidVersion { value, problem } => PipelineError::InvalidVersion {
                value,
                problem: format!("{problem} (field `{field}`)"),
            },
            PipelineError::InvalidInput { field: inner, problem } => PipelineError::InvalidInput {
                field: if inner.is_empty() {
                    field.to_string()
                } else {
                    format!("{field}.{inner}")
                },
                problem,
            },
            other => other,
        }
    }
}

#[cfg(feature = "lambda")]
impl From<PipelineError> for lambda_runtime::Diagnostic {
    fn from(error: PipelineError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().to_string(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_the_documented_names() {
        let cases = [
            (PipelineError::invalid_input("a", "b"), "InvalidInput"),
            (PipelineError::invalid_version("a", "b"), "InvalidVersion"),
            (
                PipelineError::SourceTarballNotFound {
                    location: "s3://b/k".into(),
                    missing: "s3://b/k.sig".into(),
                },
                "SourceTarballNotFound",
            ),
            (PipelineError::aws("HeadObject", "403"), "AwsServiceError"),
            (PipelineError::configuration("X", "missing"), "ConfigurationError"),
            (
                PipelineError::CurrentTargetsUnavailable {
                    url: "u".into(),
                    problem: "p".into(),
                },
                "CurrentTargetsUnavailable",
            ),
        ];
        for (error, name) in cases {
            assert_eq!(error.error_type(), name);
        }
    }

    #[test]
    fn message_names_the_field_and_the_expectation() {
        let error = PipelineError::invalid_input("instances", "expected an array of instance IDs, got a string");
        assert_eq!(
            error.to_string(),
            "invalid input field `instances`: expected an array of instance IDs, got a string"
        );
    }

    #[test]
    fn nested_field_names_are_joined() {
        let error = PipelineError::invalid_input("bucket", "missing").in_field("source");
        assert_eq!(error, PipelineError::invalid_input("source.bucket", "missing"));
    }

    #[cfg(feature = "lambda")]
    #[test]
    fn diagnostic_carries_the_error_type() {
        let diagnostic: lambda_runtime::Diagnostic = PipelineError::invalid_version("x", "bad").into();
        assert_eq!(diagnostic.error_type, "InvalidVersion");
        assert!(diagnostic.error_message.contains("\"x\""));
    }
}
