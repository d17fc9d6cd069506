//! Everything that is not a Lambda invocation goes to the AWS emulator unchanged. moto's Step
//! Functions engine sends all of its service calls to `localhost:$MOTO_PORT` — this service —
//! so its S3, EC2 or Step Functions calls must reach moto as if sent there directly.

use std::error::Error;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, HeaderMap, HeaderName, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::server::{Body, text};

/// The emulator on 127.0.0.1 and a pooled client for it.
pub(super) struct Upstream {
    port: u16,
    client: Client<HttpConnector, Incoming>,
}

impl Upstream {
    pub fn new(port: u16) -> Upstream {
        Upstream {
            port,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends `request` on (method, path, query, headers and body as they came, the body
    /// streamed) and passes the answer back the same way.
    pub async fn forward(&self, request: Request<Incoming>) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match format!("http://127.0.0.1:{}{path_and_query}", self.port).parse::<Uri>() {
            Ok(uri) => uri,
            Err(problem) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("lambda service: bad request target: {problem}"),
                );
            }
        };
        // The client names the upstream in Host, as bin/lambda-router did: moto then writes
        // the URLs it returns (an S3 object's location) for itself.
        parts.headers.remove(HOST);
        remove_hop_by_hop(&mut parts.headers);
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Err(problem) => text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "lambda service: 127.0.0.1:{} unreachable: {}",
                    self.port,
                    chain(&problem)
                ),
            ),
        }
    }
}

/// Drops the headers that belong to one connection (RFC 9110 §7.6.1): each hop frames and
/// keeps alive its own, and hyper sets them for the next.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
}

/// An error and its causes on one line (the client's own message is only "client error").
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use hyper::header::{CONTENT_LENGTH, HeaderValue};

    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_end_to_end_ones_stay() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-hop"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("AWSStepFunctions.StartExecution"),
        );
        remove_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort();
        assert_eq!(left, ["content-length", "x-amz-target"]);
    }
}
