//! One process of a function — one execution environment — and how it is started.

use std::fs::File;
use std::process::{Command, Stdio};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::function::Shared;
use super::logs::FunctionLog;
use super::messages::{Delivery, Message};
use super::{FunctionSpec, runtime_api};
use crate::{Context, StackError};
use pipeline_testing::process::GroupProcess;

/// What Lambda reports as the function's memory; nothing here limits it.
const MEMORY_SIZE_MB: &str = "128";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Started; has not asked for an event yet.
    Initializing,
    Ready,
    /// Posted `/init/error`; replaced by the next invocation's cold start.
    InitFailed,
}

/// One process of the function (one execution environment) and its Runtime API.
pub(super) struct Instance {
    pub number: u64,
    pub process: GroupProcess,
    runtime_api: JoinHandle<()>,
    pub phase: Phase,
    /// The process's pending `/next`.
    pub waiting: Option<oneshot::Sender<Delivery>>,
    /// Where this process's output starts in the function's log.
    pub log_offset: u64,
    pub started: Instant,
    /// Started for an invocation that was waiting (not ahead of any, as at the service's start).
    pub on_demand: bool,
    /// How long after its start it first asked for an event.
    pub initialised_after: Option<std::time::Duration>,
    /// How many invocations it has answered.
    pub answers: u64,
}

impl Drop for Instance {
    /// Blocks for up to the stop grace period: dropped on a blocking thread (`retire`).
    fn drop(&mut self) {
        self.runtime_api.abort();
        self.process.stop();
    }
}

impl Instance {
    /// Starts process `number` of `function`, with a Runtime API of its own that sends its
    /// calls to `mailbox`.
    pub fn spawn(
        function: &FunctionSpec,
        shared: &Shared,
        log: &FunctionLog,
        number: u64,
        mailbox: &mpsc::UnboundedSender<Message>,
        on_demand: bool,
    ) -> Result<Instance, StackError> {
        // A listener per process rather than per function: a call from a replaced process (a
        // `/next` still pending when it was killed) can then never take the next process's event.
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .context("bind a Runtime API port on 127.0.0.1")?;
        let port = listener.local_addr().context("read the Runtime API's port")?.port();
        let listener = TcpListener::from_std(listener).context("serve the Runtime API")?;
        let (log, log_offset) = log.begin_instance(&format!(
            "cold start {number} of {}: {}",
            function.name,
            function.binary.display()
        ))?;
        let process = GroupProcess::spawn(&function.name, command(function, shared, number, port, log)?)?;
        let runtime_api = tokio::spawn(runtime_api::serve(listener, number, mailbox.clone()));
        Ok(Instance {
            number,
            process,
            runtime_api,
            phase: Phase::Initializing,
            waiting: None,
            log_offset,
            started: Instant::now(),
            on_demand,
            initialised_after: None,
            answers: 0,
        })
    }
}

/// The function's process: its binary in an environment of its own — Lambda's variables,
/// the common and the function's settings, and of the caller's only PATH and HOME — so a
/// setting the deployed stack lacks is missing here too.
fn command(
    function: &FunctionSpec,
    shared: &Shared,
    number: u64,
    runtime_api_port: u16,
    log: File,
) -> Result<Command, StackError> {
    let name = &function.name;
    // Absolute, because the process runs in the binary's directory (Lambda's task root) and
    // a relative program path would be ambiguous then.
    let binary = std::path::absolute(&function.binary).context(format!("resolve {}", function.binary.display()))?;
    let mut command = Command::new(&binary);
    command.env_clear();
    for inherited in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(inherited) {
            command.env(inherited, value);
        }
    }
    command
        .envs(shared.common_environment.iter().map(|(k, v)| (k, v)))
        .envs(function.environment.iter().map(|(k, v)| (k, v)))
        // Lambda's own variables last: a function cannot set them in AWS either.
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{runtime_api_port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_SIZE_MB)
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{number}"))
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("_HANDLER", "bootstrap");
    if let Some(task_root) = binary.parent() {
        command.env("LAMBDA_TASK_ROOT", task_root).current_dir(task_root);
    }
    let stderr = log.try_clone().context("duplicate a log handle")?;
    command.stdin(Stdio::null()).stdout(log).stderr(stderr);
    Ok(command)
}
