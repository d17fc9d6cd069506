//! The service's front door: the Lambda Invoke API as AWS answers it, and everything else
//! passed to the emulator.
//!
//! AWS answers an invocation whose handler failed with HTTP 200, `X-Amz-Function-Error:
//! Unhandled` and the error document as the body; SDKs and Step Functions read that as a
//! function error (matched by `ErrorEquals`), not as a service failure to retry.

use std::collections::HashMap;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::documents::{ServiceError, request_id};
use super::messages::{Invocation, Message, Outcome};
use super::proxy::Upstream;
use super::reference::FunctionReference;
use super::server::{self, Body, header_value};

const REQUEST_ID: &str = "x-amzn-requestid";
const ERROR_TYPE: &str = "x-amzn-errortype";

/// `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    /// Queued; answered 202 at once.
    Event,
    /// Only checks that the function exists: 204.
    DryRun,
}

impl InvocationType {
    fn parse(header: Option<&str>) -> Option<InvocationType> {
        match header {
            None | Some("RequestResponse") => Some(InvocationType::RequestResponse),
            Some("Event") => Some(InvocationType::Event),
            Some("DryRun") => Some(InvocationType::DryRun),
            Some(_) => None,
        }
    }
}

pub(super) struct FrontDoor {
    /// Each function's mailbox, by deployed name.
    pub functions: HashMap<String, mpsc::UnboundedSender<Message>>,
    pub upstream: Upstream,
}

impl FrontDoor {
    pub async fn handle(self: Arc<FrontDoor>, request: Request<Incoming>) -> Response<Body> {
        // Only a POST invokes; a GET of the same path is some other API's, for the emulator.
        if request.method() == Method::POST
            && let Some(reference) = FunctionReference::of_invoke_path(request.uri().path())
        {
            return self.invoke(reference, request).await;
        }
        self.upstream.forward(request).await
    }

    async fn invoke(&self, reference: Result<FunctionReference, String>, request: Request<Incoming>) -> Response<Body> {
        let request_id = request_id();
        let found = reference
            .as_ref()
            .ok()
            .and_then(|reference| Some((reference, self.functions.get(&reference.name)?)));
        let Some((reference, function)) = found else {
            let named = match &reference {
                Ok(reference) => reference.invoked_arn(),
                Err(given) => given.clone(),
            };
            let message = format!("Function not found: {named}");
            return service_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", message, &request_id);
        };
        let header = request
            .headers()
            .get("x-amz-invocation-type")
            .map(|value| value.to_str().unwrap_or("?"));
        let Some(invocation_type) = InvocationType::parse(header) else {
            let message = format!(
                "1 validation error detected: Value '{}' at 'invocationType' failed to satisfy constraint: \
                 Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
                header.unwrap_or_default()
            );
            return service_error(StatusCode::BAD_REQUEST, "ValidationException", message, &request_id);
        };
        if invocation_type == InvocationType::DryRun {
            return answer(StatusCode::NO_CONTENT, Bytes::new(), &request_id);
        }
        let event = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(problem) => {
                let message = format!("reading the request body: {problem}");
                return service_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    message,
                    &request_id,
                );
            }
        };
        let (reply, outcome) = oneshot::channel();
        let invocation = Invocation {
            request_id: request_id.clone(),
            invoked_arn: reference.invoked_arn(),
            event,
            reply: (invocation_type == InvocationType::RequestResponse).then_some(reply),
            received: Instant::now(),
        };
        if function.send(Message::Invoke(invocation)).is_err() {
            return stopped(&request_id);
        }
        if invocation_type == InvocationType::Event {
            return answer(StatusCode::ACCEPTED, Bytes::new(), &request_id);
        }
        match outcome.await {
            Ok(Outcome::Success(body)) => answer(StatusCode::OK, body, &request_id),
            Ok(Outcome::Failure(error)) => {
                let mut response = answer(StatusCode::OK, error.body, &request_id);
                response.headers_mut().insert(
                    HeaderName::from_static("x-amz-function-error"),
                    HeaderValue::from_static("Unhandled"),
                );
                response
            }
            Err(_) => stopped(&request_id),
        }
    }
}

/// An invocation's answer, with the headers AWS sends with every one.
fn answer(status: StatusCode, body: Bytes, request_id: &str) -> Response<Body> {
    let mut response = server::json(status, body);
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-amz-executed-version"),
        HeaderValue::from_static("$LATEST"),
    );
    if let Some(value) = header_value(request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID), value);
    }
    response
}

/// An error of the Lambda service itself, shaped as AWS's REST-JSON errors: the exception's
/// name in `x-amzn-ErrorType`, `{"Type","message"}` as the body.
fn service_error(status: StatusCode, error_type: &str, message: String, request_id: &str) -> Response<Body> {
    let kind = if status.is_server_error() { "Service" } else { "User" };
    let mut response = server::json(status, ServiceError { kind, message }.to_bytes());
    let headers = response.headers_mut();
    for (name, value) in [(ERROR_TYPE, error_type), (REQUEST_ID, request_id)] {
        if let Some(value) = header_value(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

fn stopped(request_id: &str) -> Response<Body> {
    let message = "the local Lambda service stopped before the function answered".to_string();
    service_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ServiceException",
        message,
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_invocation_type_header() {
        assert_eq!(InvocationType::parse(None), Some(InvocationType::RequestResponse));
        assert_eq!(
            InvocationType::parse(Some("RequestResponse")),
            Some(InvocationType::RequestResponse)
        );
        assert_eq!(InvocationType::parse(Some("Event")), Some(InvocationType::Event));
        assert_eq!(InvocationType::parse(Some("DryRun")), Some(InvocationType::DryRun));
        assert_eq!(InvocationType::parse(Some("event")), None);
    }
}
