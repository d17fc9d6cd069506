//! The contract every Lambda of the pipeline implements, and the one way they are served.
//!
//! A function is a type with its deployed name, a typed configuration read from the
//! environment that `infra/template.yaml` gives it, the dependencies built from that at cold
//! start, and a handler. Every `main.rs` is then `pipeline_aws::serve::<TheFunction>()`: the
//! template, the local stack and the tests check the same list of functions against it.

use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pipeline_core::PipelineError;
use serde_json::Value;

use crate::config::{ProcessEnv, Source};

/// One Lambda function of the pipeline.
pub trait Function: Sized {
    /// The name it is deployed under without the stack's prefix: its binary's name.
    const NAME: &'static str;
    /// Everything it reads from its environment, validated.
    type Config;

    /// Reads the configuration; a missing or bad variable is a `ConfigurationError` naming it.
    fn configuration(source: &impl Source) -> Result<Self::Config, PipelineError>;

    /// The function with its clients, built once per cold start and reused by invocations.
    fn new(config: Self::Config, sdk_config: &SdkConfig) -> Self;

    /// One invocation: the event in, the (pass-through) output or a typed error out.
    fn handle(&self, event: Value) -> impl Future<Output = Result<Value, PipelineError>>;
}

/// Runs `F` under the Lambda runtime until it stops. A configuration error is reported to the
/// Runtime API's init-error endpoint, so the caller gets the `ConfigurationError` naming the
/// variable rather than a bare "Runtime exited".
pub async fn serve<F: Function>() -> Result<(), lambda_runtime::Error> {
    crate::init_tracing();
    let config = match F::configuration(&ProcessEnv) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(
                function = F::NAME,
                error_type = error.error_type(),
                "configuration failed: {error}"
            );
            if let Ok(runtime_api) = std::env::var("AWS_LAMBDA_RUNTIME_API")
                && let Err(problem) = report_init_error(&runtime_api, &error).await
            {
                tracing::error!("could not report the configuration error to the Runtime API: {problem}");
            }
            return Err(error.into());
        }
    };
    let sdk_config = crate::load_sdk_config().await;
    let function = F::new(config, &sdk_config);
    // Boxed: the handlers' futures nest deeply (SDK calls in loops), and the compiler's layout
    // query of `main`'s future would otherwise exceed its depth limit.
    crate::run(|event| Box::pin(function.handle(event))).await
}

/// The Runtime API's time limit for the whole request; Lambda itself ends the init phase.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// `POST /2018-06-01/runtime/init/error` on `runtime_api` (`host:port`) with the error
/// document Lambda hands to the caller.
pub async fn report_init_error(runtime_api: &str, error: &PipelineError) -> Result<(), String> {
    let document = serde_json::json!({
        "errorType": error.error_type(),
        "errorMessage": error.to_string(),
        "stackTrace": [],
    });
    let request = hyper::Request::post(format!("http://{runtime_api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", error.error_type())
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(document.to_string())))
        .map_err(|e| format!("bad Runtime API address {runtime_api:?}: {e}"))?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(REPORT_TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("no answer within {} s", REPORT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("request failed: {e}"))?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// Accepts one request, answers 202 and returns its request line, headers and body.
    fn one_request_server() -> (String, std::thread::JoinHandle<(String, Vec<String>, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                headers.push(line.trim().to_lowercase());
            }
            let length: usize = headers
                .iter()
                .find_map(|h| h.strip_prefix("content-length:"))
                .map(|n| n.trim().parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            stream
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n")
                .unwrap();
            (
                request_line.trim().to_string(),
                headers,
                String::from_utf8(body).unwrap(),
            )
        });
        (address, server)
    }

    #[tokio::test]
    async fn configuration_errors_are_posted_to_the_init_error_endpoint() {
        let (address, server) = one_request_server();
        let error = PipelineError::configuration("SCRATCH_BUCKET", "is not set; expected an S3 bucket name");
        report_init_error(&address, &error).await.unwrap();
        let (request_line, headers, body) = server.join().unwrap();
        assert_eq!(request_line, "POST /2018-06-01/runtime/init/error HTTP/1.1");
        assert!(
            headers.contains(&"lambda-runtime-function-error-type: configurationerror".to_string()),
            "{headers:?}"
        );
        let document: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(document["errorType"], "ConfigurationError");
        assert_eq!(
            document["errorMessage"],
            "configuration variable SCRATCH_BUCKET: is not set; expected an S3 bucket name"
        );
    }

    #[tokio::test]
    async fn an_unreachable_runtime_api_is_an_error_not_a_hang() {
        let unused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let error = PipelineError::configuration("X", "missing");
        let problem = report_init_error(&unused.to_string(), &error).await.unwrap_err();
        assert!(problem.contains("request failed"), "{problem}");
    }
}
