//! A local Lambda service: the workspace's function binaries run as AWS runs them, behind the
//! Invoke API as AWS answers it, on 127.0.0.1.
//!
//! - The Invoke API (`POST /2015-03-31/functions/{name or ARN}/invocations`) runs the event
//!   through that function; any other request is passed unchanged to the emulator
//!   (`upstream_port`), so moto's Step Functions engine can send all its service calls here.
//! - Each function is one process at a time (one execution environment) speaking the Lambda
//!   Runtime API to a listener of its own; invocations queue and are served in order. A process
//!   that exits fails the invocation it held (`Runtime.ExitError`) and the next invocation
//!   starts a new one (a cold start).
//! - Every function starts at once; `start` returns when each is ready or has failed.
//!
//! Logs, in `log_dir`: `<function>.log` (each process's stdout and stderr, a header line per
//! cold start) and `lambda-service.log` (a line per invocation and per process start or exit).

mod documents;
mod function;
mod instance;
mod invoke;
mod logs;
mod messages;
mod proxy;
mod reference;
mod runtime_api;
mod server;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use self::function::{Function, Shared};
use self::invoke::FrontDoor;
use self::logs::ServiceLog;
use self::messages::{InitReport, Message};
use self::proxy::Upstream;
use crate::{Context, StackError};

/// One function as deployed.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The deployed function name, which invocations name.
    pub name: String,
    /// Its executable (`target/debug/<bin>`).
    pub binary: PathBuf,
    /// The function's own environment, as the deployed stack sets it.
    pub environment: Vec<(String, String)>,
}

/// One cold start of a function, as Lambda reports one (`Init Duration` and the first
/// invocation's duration together): from the process's start to its first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdStart {
    /// From the start to its first `/next`: the runtime's and the function's initialisation.
    pub init: Duration,
    /// From the start to the first answer posted (`/response` or `/error`).
    pub first_response: Duration,
    /// Peak resident memory of the process at its first answer (`VmHWM`), if readable.
    pub peak_rss_kib: Option<u64>,
}

/// What to serve, and where.
#[derive(Debug)]
pub struct ServiceConfig {
    pub functions: Vec<FunctionSpec>,
    /// Added to every function's environment (endpoint, credentials, region, log format).
    pub common_environment: Vec<(String, String)>,
    /// Where requests other than invocations go (moto).
    pub upstream_port: u16,
    pub log_dir: PathBuf,
    /// The socket to serve on, bound by the caller (who needed its port before the service
    /// could start: a port only picked and bound later may be taken meanwhile); `None` binds a
    /// free one (see `LambdaService::port`).
    pub listener: Option<std::net::TcpListener>,
    /// How long a process may take from its start to its first `/next`.
    pub init_timeout: Duration,
    /// How long an invocation may run before it fails with `Sandbox.Timedout` and its
    /// process is replaced (Lambda's `Timeout`).
    pub invocation_timeout: Duration,
}

impl ServiceConfig {
    /// Any free port, 30 s to initialise, and Lambda's maximum of 900 s per invocation.
    pub fn new(
        functions: Vec<FunctionSpec>,
        common_environment: Vec<(String, String)>,
        upstream_port: u16,
        log_dir: PathBuf,
    ) -> ServiceConfig {
        ServiceConfig {
            functions,
            common_environment,
            upstream_port,
            log_dir,
            listener: None,
            init_timeout: Duration::from_secs(30),
            invocation_timeout: Duration::from_secs(900),
        }
    }
}

/// The running service. Stopped (every function process with it) by `stop()` or when dropped.
pub struct LambdaService {
    port: u16,
    log_dir: PathBuf,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LambdaService {
    /// Starts every function and the Invoke API; returns once each function has asked for an
    /// event, or fails naming every function that did not (its init error, or its exit status
    /// and the end of its log, or the time-out), with everything stopped again.
    ///
    /// The service runs on a thread and runtime of its own, so it serves whatever the caller's
    /// runtime is doing (a blocking call, a current-thread test).
    pub async fn start(mut config: ServiceConfig) -> Result<LambdaService, StackError> {
        let mut names = HashSet::new();
        if let Some(twice) = config.functions.iter().find(|f| !names.insert(f.name.as_str())) {
            return Err(StackError(format!("function {} is configured twice", twice.name)));
        }
        std::fs::create_dir_all(&config.log_dir).context(format!("create {}", config.log_dir.display()))?;
        let listener = match config.listener.take() {
            Some(listener) => listener,
            None => std::net::TcpListener::bind(("127.0.0.1", 0)).context("listen on a free port of 127.0.0.1")?,
        };
        listener
            .set_nonblocking(true)
            .context("make the service's socket non-blocking")?;
        let port = listener.local_addr().context("read the service's port")?.port();
        let shared = Arc::new(Shared {
            common_environment: config.common_environment.clone(),
            log_dir: config.log_dir.clone(),
            service_log: ServiceLog::create(&config.log_dir.join("lambda-service.log"))?,
            init_timeout: config.init_timeout,
            invocation_timeout: config.invocation_timeout,
            pids: Mutex::new(HashMap::new()),
            answers_to_lose: Mutex::new(HashMap::new()),
            process_per_invocation: Mutex::new(HashSet::new()),
            cold_starts: Mutex::new(HashMap::new()),
        });

        let (ready, started) = oneshot::channel();
        let (shutdown, stop_requested) = oneshot::channel();
        let thread = std::thread::Builder::new().name("lambda-service".into()).spawn({
            let shared = shared.clone();
            move || match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("lambda-service")
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(serve(config, shared, listener, ready, stop_requested)),
                Err(problem) => {
                    let _ = ready.send(Err(StackError(format!(
                        "start the Lambda service's runtime: {problem}"
                    ))));
                }
            }
        });
        let thread = thread.context("start the Lambda service's thread")?;
        match started.await {
            Ok(Ok(())) => Ok(LambdaService {
                port,
                log_dir: shared.log_dir.clone(),
                shared,
                shutdown: Some(shutdown),
                thread: Some(thread),
            }),
            // Everything it started is stopped already; the thread is ending.
            Ok(Err(error)) => Err(error),
            Err(_) => Err(StackError("the Lambda service's thread ended while starting".into())),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_LAMBDA` and moto's `MOTO_PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process ID of `function`'s current process; `None` between an exit and the next
    /// cold start.
    pub fn process_id(&self, function: &str) -> Option<u32> {
        let pids = self.shared.pids.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pids.get(function).copied()
    }

    /// Fault injection: the next `count` invocations of `function` run to their end, and then
    /// fail with `Sandbox.Timedout` as if the function had run out of time before answering
    /// (its process is replaced, as Lambda replaces a timed-out execution environment). What
    /// the function did (an instance launched, an object written) stays done.
    pub fn lose_answers_of(&self, function: &str, count: u32) {
        let mut answers = self
            .shared
            .answers_to_lose
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        answers.insert(function.to_string(), count);
    }

    /// From now on `function`'s process is replaced after each answer, so that every
    /// invocation is a cold start, measured in `cold_starts`.
    pub fn process_per_invocation(&self, function: &str) {
        let mut functions = self
            .shared
            .process_per_invocation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        functions.insert(function.to_string());
    }

    /// The cold starts of `function` measured so far: those of processes started for an
    /// invocation that was waiting, at their first answer.
    pub fn cold_starts(&self, function: &str) -> Vec<ColdStart> {
        let cold_starts = self
            .shared
            .cold_starts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cold_starts.get(function).cloned().unwrap_or_default()
    }

    /// Where `function`'s processes write their output.
    pub fn function_log(&self, function: &str) -> PathBuf {
        logs::FunctionLog::new(&self.log_dir, function).path
    }

    /// The service's own log: a line per invocation and per process start or exit.
    pub fn service_log(&self) -> PathBuf {
        self.log_dir.join("lambda-service.log")
    }

    /// Stops every function process (SIGTERM to its group, SIGKILL after a grace period) and
    /// the listeners; waits until they are gone. Invocations still waiting are answered 500.
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LambdaService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The service's life on its own runtime: start, report, serve until told to stop, stop.
async fn serve(
    config: ServiceConfig,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    ready: oneshot::Sender<Result<(), StackError>>,
    stop_requested: oneshot::Receiver<()>,
) {
    let mut mailboxes = HashMap::new();
    let mut startups = Vec::new();
    for spec in config.functions {
        let (mailbox, messages) = mpsc::unbounded_channel();
        let (startup, report) = oneshot::channel();
        startups.push((spec.name.clone(), report));
        mailboxes.insert(spec.name.clone(), mailbox.clone());
        tokio::spawn(Function::new(spec, shared.clone(), mailbox, startup).run(messages));
    }
    let mailboxes_to_stop: Vec<_> = mailboxes.values().cloned().collect();
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(problem) => {
            stop_functions(&mailboxes_to_stop).await;
            let _ = ready.send(Err(StackError(format!("serve the Invoke API: {problem}"))));
            return;
        }
    };
    let front_door = Arc::new(FrontDoor {
        functions: mailboxes,
        upstream: Upstream::new(config.upstream_port),
    });
    tokio::spawn(server::serve(listener, move |request| {
        front_door.clone().handle(request)
    }));

    let failures = startup_failures(startups, config.init_timeout).await;
    if !failures.is_empty() {
        stop_functions(&mailboxes_to_stop).await;
        let _ = ready.send(Err(StackError(format!(
            "{} of the Lambda functions failed to initialise (their logs are in {}):\n{}",
            failures.len(),
            config.log_dir.display(),
            failures.join("\n")
        ))));
        return;
    }
    shared.service_log.line("every function is ready");
    if ready.send(Ok(())).is_ok() {
        // An error here means the `LambdaService` is gone: stop all the same.
        let _ = stop_requested.await;
    }
    stop_functions(&mailboxes_to_stop).await;
    shared.service_log.line("stopped");
}

/// Waits for each function's first start; a sentence for each that failed.
async fn startup_failures(
    startups: Vec<(String, oneshot::Receiver<InitReport>)>,
    init_timeout: Duration,
) -> Vec<String> {
    // Each function's task enforces `init_timeout` itself; this margin only guards against a
    // task that never reports.
    let deadline = tokio::time::Instant::now() + init_timeout + Duration::from_secs(10);
    let mut failures = Vec::new();
    for (name, report) in startups {
        match tokio::time::timeout_at(deadline, report).await {
            Ok(Ok(InitReport::Ready)) => {}
            // A log tail spans lines: indented, so each function's entry reads as one.
            Ok(Ok(InitReport::Failed(why))) => failures.push(format!("- {name}: {}", why.replace('\n', "\n    "))),
            Ok(Err(_)) => failures.push(format!("- {name}: its task ended before reporting")),
            Err(_) => failures.push(format!("- {name}: no report within {} s", init_timeout.as_secs())),
        }
    }
    failures
}

/// Stops every function's process, all at once, and waits until they are gone.
async fn stop_functions(mailboxes: &[mpsc::UnboundedSender<Message>]) {
    let mut stopped = Vec::new();
    for mailbox in mailboxes {
        let (done, gone) = oneshot::channel();
        if mailbox.send(Message::Stop(done)).is_ok() {
            stopped.push(gone);
        }
    }
    for gone in stopped {
        let _ = gone.await;
    }
}
