//! The Lambda runtime wiring every `main.rs` shares.

use std::future::Future;

use lambda_runtime::{LambdaEvent, service_fn};
use pipeline_core::PipelineError;
use serde_json::Value;

/// Serves `handler` until the runtime stops. A handler error goes back to the caller as a
/// `Diagnostic` whose `errorType` is the error's stable name, and is logged with it.
pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<Value, PipelineError>>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let request_id = event.context.request_id.clone();
        let work = handler(event.payload);
        async move {
            let result = work.await;
            match &result {
                Ok(_) => tracing::info!(request_id, "invocation succeeded"),
                Err(error) => tracing::error!(
                    request_id,
                    error_type = error.error_type(),
                    "invocation failed: {error}"
                ),
            }
            result
        }
    }))
    .await
}
