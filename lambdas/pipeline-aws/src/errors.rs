//! Turning SDK errors into the pipeline's `AwsServiceError` (may pass: retried) or
//! `AwsRequestRefused` (a retry changes nothing), keeping what an operator needs to act on it:
//! the operation, AWS's error code and message, the HTTP status and request ID.

use aws_sdk_s3::error::SdkError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use pipeline_core::PipelineError;

/// Error codes AWS services use for throttling, which come with a 400 but pass with time.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether a service's answer may change on a retry: a 5xx, a 429 or a throttling code.
pub fn is_transient(status: u16, code: Option<&str>) -> bool {
    status >= 500 || status == 429 || code.is_some_and(|code| THROTTLING_CODES.contains(&code))
}

pub fn service_error<E>(operation: &str, error: SdkError<E, HttpResponse>) -> PipelineError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let meta = context.err().meta();
            let mut detail = format!(
                "{} (HTTP {status}): {}",
                meta.code().unwrap_or("unknown error code"),
                meta.message().unwrap_or("no message")
            );
            let headers = context.raw().headers();
            if let Some(request_id) = headers
                .get("x-amz-request-id")
                .or_else(|| headers.get("x-amzn-requestid"))
            {
                detail.push_str(&format!(" [request {request_id}]"));
            }
            if is_transient(status, meta.code()) {
                PipelineError::aws(operation, detail)
            } else {
                PipelineError::AwsRequestRefused {
                    operation: operation.to_string(),
                    detail,
                }
            }
        }
        SdkError::DispatchFailure(_) => PipelineError::aws(
            operation,
            format!("could not reach the service: {}", DisplayErrorContext(&error)),
        ),
        SdkError::TimeoutError(_) => {
            PipelineError::aws(operation, format!("timed out: {}", DisplayErrorContext(&error)))
        }
        _ => PipelineError::aws(operation, DisplayErrorContext(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient_refusals_are_not() {
        assert!(is_transient(500, None));
        assert!(is_transient(503, Some("SlowDown")));
        assert!(is_transient(400, Some("ThrottlingException")));
        assert!(is_transient(400, Some("RequestLimitExceeded")));
        assert!(is_transient(429, None));
        assert!(!is_transient(403, Some("AccessDenied")));
        assert!(!is_transient(400, Some("InvalidParameterValue")));
        assert!(!is_transient(404, Some("NoSuchBucket")));
    }
}
