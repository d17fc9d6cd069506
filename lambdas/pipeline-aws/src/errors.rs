//! Turning SDK errors into the pipeline's `AwsServiceError`, keeping what an operator needs to
//! act on it: the operation, AWS's error code and message, the HTTP status and request ID.

use aws_sdk_s3::error::SdkError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use pipeline_core::PipelineError;

pub fn service_error<E>(operation: &str, error: SdkError<E, HttpResponse>) -> PipelineError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = match &error {
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
            detail
        }
        SdkError::DispatchFailure(_) => format!("could not reach the service: {}", DisplayErrorContext(&error)),
        SdkError::TimeoutError(_) => format!("timed out: {}", DisplayErrorContext(&error)),
        _ => DisplayErrorContext(&error).to_string(),
    };
    PipelineError::aws(operation, detail)
}
