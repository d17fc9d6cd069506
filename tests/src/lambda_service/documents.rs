//! The JSON documents the service exchanges, as AWS shapes them: the error document of a failed
//! invocation, the Invoke API's own errors, the Runtime API's answers; and the identifiers Lambda
//! makes up for each invocation.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

/// What an invocation that failed answers, as its body: the runtime's own document for a
/// handler or init error, or one the service writes (exit, time-out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorDocument {
    pub error_type: String,
    pub error_message: String,
}

impl ErrorDocument {
    pub fn new(error_type: &str, error_message: impl Into<String>) -> ErrorDocument {
        ErrorDocument {
            error_type: error_type.to_string(),
            error_message: error_message.into(),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        // A struct of two strings always serializes.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A function error as the caller gets it: the type (for the service's log) and the body.
#[derive(Debug, Clone)]
pub(super) struct FunctionError {
    pub error_type: String,
    pub body: Bytes,
}

impl From<ErrorDocument> for FunctionError {
    fn from(document: ErrorDocument) -> FunctionError {
        FunctionError {
            body: document.to_bytes(),
            error_type: document.error_type,
        }
    }
}

impl FunctionError {
    /// What a runtime posted to `/error` or `/init/error`. AWS hands the runtime's document to
    /// the caller as it was posted (extra fields such as `stackTrace` included), so a well-formed
    /// one is kept byte for byte; anything else becomes a document of the header's error type
    /// (`Lambda-Runtime-Function-Error-Type`) holding the text that was posted.
    pub fn from_runtime(body: Bytes, header_type: Option<&str>) -> FunctionError {
        match serde_json::from_slice::<ErrorDocument>(&body) {
            Ok(document) => FunctionError {
                error_type: document.error_type,
                body,
            },
            Err(_) => ErrorDocument::new(
                header_type.unwrap_or("Runtime.Unknown"),
                String::from_utf8_lossy(&body).into_owned(),
            )
            .into(),
        }
    }
}

/// The body of an Invoke API error (`ResourceNotFoundException`, …): AWS's REST-JSON shape.
#[derive(Debug, Serialize)]
pub(super) struct ServiceError<'a> {
    #[serde(rename = "Type")]
    pub kind: &'a str,
    pub message: String,
}

impl ServiceError<'_> {
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The Runtime API's answer to a posted response or error: `202 {"status":"OK"}`.
#[derive(Debug, Serialize)]
pub(super) struct Accepted {
    pub status: &'static str,
}

/// A new request ID in the UUID v4 shape Lambda uses. Random enough to be unique within a run
/// (std's hasher keys are random per `RandomState`, plus a counter), without a UUID crate.
pub(super) fn request_id() -> String {
    let (high, low) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        ((low >> 48) & 0x3fff) | 0x8000,
        low & 0xffff_ffff_ffff
    )
}

/// An X-Ray trace header like the one Lambda passes to a function (`_X_AMZN_TRACE_ID`); nothing
/// here traces, so it is marked not sampled.
pub(super) fn trace_id() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "Root=1-{seconds:08x}-{:024x};Parent={:016x};Sampled=0",
        (u128::from(random_u64()) << 32) | u128::from(random_u64() >> 32),
        random_u64()
    )
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_error_document_is_kept_as_posted() {
        let posted = Bytes::from_static(br#"{"errorType":"InvalidInput","errorMessage":"no","stackTrace":[]}"#);
        let error = FunctionError::from_runtime(posted.clone(), Some("unhandled"));
        assert_eq!(error.error_type, "InvalidInput");
        assert_eq!(error.body, posted);
    }

    #[test]
    fn a_runtime_error_that_is_not_a_document_is_wrapped_in_one() {
        let error = FunctionError::from_runtime(Bytes::from_static(b"boom"), Some("Runtime.InitError"));
        assert_eq!(error.error_type, "Runtime.InitError");
        let document: ErrorDocument = serde_json::from_slice(&error.body).unwrap();
        assert_eq!(document, ErrorDocument::new("Runtime.InitError", "boom"));
    }

    #[test]
    fn request_ids_have_the_uuid_shape_and_differ() {
        let (first, second) = (request_id(), request_id());
        assert_ne!(first, second);
        let groups: Vec<usize> = first.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(first.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn trace_ids_have_the_x_ray_shape() {
        let trace = trace_id();
        let root = trace.strip_prefix("Root=1-").unwrap();
        let (time, rest) = root.split_once('-').unwrap();
        assert_eq!(time.len(), 8);
        let (unique, rest) = rest.split_once(";Parent=").unwrap();
        assert_eq!(unique.len(), 24);
        assert_eq!(rest.split_once(";Sampled=").unwrap().0.len(), 16);
    }
}
