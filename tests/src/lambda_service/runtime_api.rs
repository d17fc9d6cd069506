//! The Lambda Runtime API of one function process
//! (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): what the process's
//! `lambda_runtime` talks to at `AWS_LAMBDA_RUNTIME_API`. Each call becomes a message to the
//! function's task, which decides; this module only translates HTTP.

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderName;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::documents::{Accepted, ErrorDocument, FunctionError};
use super::messages::{Delivery, Message, RuntimeCall, RuntimeReply};
use super::server::{self, Body, header_value};

const PREFIX: &str = "/2018-06-01/runtime/";
const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";

/// Serves process number `instance`'s Runtime API on `listener` until aborted.
pub(super) async fn serve(listener: TcpListener, instance: u64, function: mpsc::UnboundedSender<Message>) {
    server::serve(listener, move |request| handle(instance, function.clone(), request)).await;
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Next,
    Response(String),
    Error(String),
    InitError,
}

impl Route {
    fn of(method: &Method, path: &str) -> Option<Route> {
        let rest = path.strip_prefix(PREFIX)?;
        let segments: Vec<&str> = rest.split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["invocation", "next"]) => Some(Route::Next),
            (&Method::POST, ["invocation", id, "response"]) => Some(Route::Response(id.to_string())),
            (&Method::POST, ["invocation", id, "error"]) => Some(Route::Error(id.to_string())),
            (&Method::POST, ["init", "error"]) => Some(Route::InitError),
            _ => None,
        }
    }
}

async fn handle(instance: u64, function: mpsc::UnboundedSender<Message>, request: Request<Incoming>) -> Response<Body> {
    let Some(route) = Route::of(request.method(), request.uri().path()) else {
        let message = format!(
            "no such Runtime API endpoint: {} {}",
            request.method(),
            request.uri().path()
        );
        return error(StatusCode::NOT_FOUND, "InvalidRequest", message);
    };
    let send = move |call: RuntimeCall| function.send(Message::Runtime { instance, call }).is_ok();
    match route {
        Route::Next => next(send).await,
        Route::Response(request_id) => {
            post(request, send, |body, _, reply| RuntimeCall::Response {
                request_id,
                body,
                reply,
            })
            .await
        }
        Route::Error(request_id) => {
            post(request, send, |body, error_type, reply| RuntimeCall::Error {
                request_id,
                error: FunctionError::from_runtime(body, error_type),
                reply,
            })
            .await
        }
        Route::InitError => {
            post(request, send, |body, error_type, reply| RuntimeCall::InitError {
                error: FunctionError::from_runtime(body, error_type),
                reply,
            })
            .await
        }
    }
}

/// The long poll: answered when an invocation is handed to this process.
async fn next(send: impl FnOnce(RuntimeCall) -> bool) -> Response<Body> {
    let (waiter, delivery) = oneshot::channel();
    if !send(RuntimeCall::Next(waiter)) {
        return stopped();
    }
    match delivery.await {
        Ok(delivery) => next_event(delivery),
        // The function's task dropped the waiter: this process may not take events.
        Err(_) => reply(RuntimeReply::InvalidState),
    }
}

/// A posted response or error: `call` makes the message of the body and the error type header.
async fn post(
    request: Request<Incoming>,
    send: impl FnOnce(RuntimeCall) -> bool,
    call: impl FnOnce(Bytes, Option<&str>, oneshot::Sender<RuntimeReply>) -> RuntimeCall,
) -> Response<Body> {
    let error_type = request
        .headers()
        .get(ERROR_TYPE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                format!("reading the body: {problem}"),
            );
        }
    };
    let (answer, answered) = oneshot::channel();
    if !send(call(body, error_type.as_deref(), answer)) {
        return stopped();
    }
    match answered.await {
        Ok(outcome) => reply(outcome),
        Err(_) => stopped(),
    }
}

/// `/next`'s answer: the event, and the invocation's context in the headers `lambda_runtime`
/// builds its `Context` from.
fn next_event(delivery: Delivery) -> Response<Body> {
    let mut response = server::json(StatusCode::OK, delivery.event);
    let headers = response.headers_mut();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", delivery.request_id),
        ("lambda-runtime-deadline-ms", delivery.deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", delivery.invoked_arn),
        ("lambda-runtime-trace-id", delivery.trace_id),
    ] {
        if let Some(value) = header_value(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// The Runtime API's answers, with the status and `errorType` AWS's uses.
fn reply(outcome: RuntimeReply) -> Response<Body> {
    match outcome {
        RuntimeReply::Accepted => {
            let body = serde_json::to_vec(&Accepted { status: "OK" }).unwrap_or_default();
            server::json(StatusCode::ACCEPTED, Bytes::from(body))
        }
        RuntimeReply::UnknownRequest => error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "not the request ID of the invocation in progress".to_string(),
        ),
        RuntimeReply::InvalidState => error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "not allowed in this state of the execution environment".to_string(),
        ),
    }
}

fn stopped() -> Response<Body> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Runtime.Stopped",
        "the Lambda service is stopping".to_string(),
    )
}

fn error(status: StatusCode, error_type: &str, message: String) -> Response<Body> {
    server::json(status, ErrorDocument::new(error_type, message).to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_four_endpoints_and_nothing_else() {
        let route = |method: Method, path: &str| Route::of(&method, path);
        assert_eq!(
            route(Method::GET, "/2018-06-01/runtime/invocation/next"),
            Some(Route::Next)
        );
        assert_eq!(
            route(Method::POST, "/2018-06-01/runtime/invocation/abc/response"),
            Some(Route::Response("abc".into()))
        );
        assert_eq!(
            route(Method::POST, "/2018-06-01/runtime/invocation/abc/error"),
            Some(Route::Error("abc".into()))
        );
        assert_eq!(
            route(Method::POST, "/2018-06-01/runtime/init/error"),
            Some(Route::InitError)
        );
        assert_eq!(route(Method::POST, "/2018-06-01/runtime/invocation/next"), None);
        assert_eq!(route(Method::GET, "/2018-06-01/runtime/invocation/abc/response"), None);
        assert_eq!(route(Method::POST, "/2018-06-01/runtime/restore/error"), None);
        assert_eq!(route(Method::GET, "/2015-03-31/functions/f/invocations"), None);
    }
}
