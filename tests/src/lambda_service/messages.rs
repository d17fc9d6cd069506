//! The messages between the service's tasks: invocations from the Invoke API to a function's
//! task, calls of a process's Runtime API to it, and what they are answered with.

use hyper::body::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::documents::FunctionError;

/// An invocation waiting for its outcome.
pub(super) struct Invocation {
    pub request_id: String,
    /// The ARN as the caller gave it (with its qualifier), which the function is told.
    pub invoked_arn: String,
    pub event: Bytes,
    /// `None` for an asynchronous (`Event`) invocation: nobody waits for it.
    pub reply: Option<oneshot::Sender<Outcome>>,
    pub received: Instant,
}

pub(super) enum Outcome {
    Success(Bytes),
    Failure(FunctionError),
}

pub(super) enum Message {
    Invoke(Invocation),
    /// A call to the Runtime API of process number `instance` (a stale one is refused).
    Runtime {
        instance: u64,
        call: RuntimeCall,
    },
    /// Stop the process and answer when it is gone.
    Stop(oneshot::Sender<()>),
}

pub(super) enum RuntimeCall {
    Next(oneshot::Sender<Delivery>),
    Response {
        request_id: String,
        body: Bytes,
        reply: oneshot::Sender<RuntimeReply>,
    },
    Error {
        request_id: String,
        error: FunctionError,
        reply: oneshot::Sender<RuntimeReply>,
    },
    InitError {
        error: FunctionError,
        reply: oneshot::Sender<RuntimeReply>,
    },
}

/// How the Runtime API answers a posted response or error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RuntimeReply {
    Accepted,
    /// Not the request ID of the invocation in flight.
    UnknownRequest,
    /// Not allowed now (an init error after the first `/next`, a call of a replaced process).
    InvalidState,
}

/// The event `/next` answers with.
pub(super) struct Delivery {
    pub request_id: String,
    pub deadline_ms: u128,
    pub invoked_arn: String,
    pub trace_id: String,
    pub event: Bytes,
}

/// How the first start of a function went, for `LambdaService::start`.
pub(super) enum InitReport {
    Ready,
    Failed(String),
}
