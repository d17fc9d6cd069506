//! One function: its queue of invocations and the process that serves them one at a time, as a
//! single Lambda execution environment does. A task owns all of it and is driven by messages —
//! invocations from the Invoke API, calls from the process's Runtime API — so no state is shared
//! between tasks and the order of events is the order of the mailbox.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::documents::{ErrorDocument, FunctionError, trace_id};
use super::instance::{Instance, Phase};
use super::logs::{FunctionLog, ServiceLog};
use super::messages::{Delivery, InitReport, Invocation, Message, Outcome, RuntimeCall, RuntimeReply};
use super::{ColdStart, FunctionSpec};
use crate::StackError;

/// How often a running process is checked for having exited. Exits are otherwise silent (the
/// process is a `std` child), and a tenth of a second is short next to any invocation.
const EXIT_CHECK: Duration = Duration::from_millis(100);

/// What every function's task shares.
pub(super) struct Shared {
    pub common_environment: Vec<(String, String)>,
    pub log_dir: PathBuf,
    pub service_log: ServiceLog,
    pub init_timeout: Duration,
    pub invocation_timeout: Duration,
    /// The process ID of each function's current process.
    pub pids: Mutex<HashMap<String, u32>>,
    /// Fault injection: how many of a function's next answers are lost, each invocation then
    /// failing as one that ran out of time after doing its work.
    pub answers_to_lose: Mutex<HashMap<String, u32>>,
    /// Functions whose process is replaced after each answer, so every invocation is a cold
    /// start (what the benchmark measures).
    pub process_per_invocation: Mutex<HashSet<String>>,
    /// Each function's measured cold starts, oldest first.
    pub cold_starts: Mutex<HashMap<String, Vec<ColdStart>>>,
}

struct InFlight {
    invocation: Invocation,
    deadline: Instant,
}

pub(super) struct Function {
    spec: FunctionSpec,
    shared: Arc<Shared>,
    log: FunctionLog,
    /// The task's own mailbox, handed to each process's Runtime API.
    mailbox: mpsc::UnboundedSender<Message>,
    instance: Option<Instance>,
    instances_started: u64,
    queue: VecDeque<Invocation>,
    in_flight: Option<InFlight>,
    startup: Option<oneshot::Sender<InitReport>>,
}

impl Function {
    pub fn new(
        spec: FunctionSpec,
        shared: Arc<Shared>,
        mailbox: mpsc::UnboundedSender<Message>,
        startup: oneshot::Sender<InitReport>,
    ) -> Function {
        Function {
            log: FunctionLog::new(&shared.log_dir, &spec.name),
            spec,
            shared,
            mailbox,
            instance: None,
            instances_started: 0,
            queue: VecDeque::new(),
            in_flight: None,
            startup: Some(startup),
        }
    }

    /// Starts the first process, then serves messages until told to stop.
    pub async fn run(mut self, mut messages: mpsc::UnboundedReceiver<Message>) {
        self.start_instance();
        let mut exit_check = tokio::time::interval(EXIT_CHECK);
        exit_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let deadline = self.deadline();
            tokio::select! {
                message = messages.recv() => match message {
                    Some(Message::Invoke(invocation)) => self.invoke(invocation),
                    Some(Message::Runtime { instance, call }) => self.runtime_call(instance, call),
                    Some(Message::Stop(done)) => {
                        self.stop().await;
                        let _ = done.send(());
                        return;
                    }
                    // The task holds a sender itself, so the mailbox never closes.
                    None => return,
                },
                _ = exit_check.tick(), if self.instance.is_some() => self.check_exit(),
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.deadline_passed();
                }
            }
        }
    }

    fn invoke(&mut self, invocation: Invocation) {
        // A process that died since the last check must not be handed the event.
        self.check_exit();
        self.queue.push_back(invocation);
        match self.instance.as_ref().map(|instance| instance.phase) {
            None => self.start_instance(),
            // As in Lambda, a failed init is tried again by the next invocation.
            Some(Phase::InitFailed) => {
                self.retire();
                self.start_instance();
            }
            Some(Phase::Initializing | Phase::Ready) => {}
        }
        self.dispatch();
    }

    fn runtime_call(&mut self, number: u64, call: RuntimeCall) {
        if self.instance.as_ref().is_none_or(|instance| instance.number != number) {
            // A replaced process: its `/next` waiter is dropped, which answers it 403.
            if let RuntimeCall::Response { reply, .. }
            | RuntimeCall::Error { reply, .. }
            | RuntimeCall::InitError { reply, .. } = call
            {
                let _ = reply.send(RuntimeReply::InvalidState);
            }
            return;
        }
        match call {
            RuntimeCall::Next(waiter) => self.next(waiter),
            RuntimeCall::Response {
                request_id,
                body,
                reply,
            } => {
                let _ = reply.send(self.complete(&request_id, Outcome::Success(body)));
            }
            RuntimeCall::Error {
                request_id,
                error,
                reply,
            } => {
                let _ = reply.send(self.complete(&request_id, Outcome::Failure(error)));
            }
            RuntimeCall::InitError { error, reply } => {
                let _ = reply.send(self.init_error(error));
            }
        }
    }

    fn next(&mut self, waiter: oneshot::Sender<Delivery>) {
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        match instance.phase {
            Phase::InitFailed => return,
            Phase::Initializing => {
                instance.phase = Phase::Ready;
                instance.initialised_after = Some(instance.started.elapsed());
                let line = format!(
                    "{} ready: process {} initialised in {} ms",
                    self.spec.name,
                    instance.number,
                    instance.started.elapsed().as_millis()
                );
                self.shared.service_log.line(&line);
                if let Some(startup) = self.startup.take() {
                    let _ = startup.send(InitReport::Ready);
                }
            }
            Phase::Ready => {}
        }
        instance.waiting = Some(waiter);
        if let Some(abandoned) = self.in_flight.take() {
            // The runtime moved on without answering: say so rather than wait forever.
            let message = format!(
                "RequestId: {} Error: the runtime asked for the next event without answering this one",
                abandoned.invocation.request_id
            );
            self.finish(
                abandoned.invocation,
                Outcome::Failure(ErrorDocument::new("Runtime.Unknown", message).into()),
            );
        }
        self.dispatch();
    }

    fn complete(&mut self, request_id: &str, outcome: Outcome) -> RuntimeReply {
        let Some(flight) = self
            .in_flight
            .take_if(|flight| flight.invocation.request_id == request_id)
        else {
            return RuntimeReply::UnknownRequest;
        };
        if self.lose_answer() {
            self.time_out(flight);
        } else {
            self.record_cold_start();
            // Before the answer goes out: whoever gets it sees no process left.
            let fresh_process = self.is_fresh_per_invocation();
            if fresh_process {
                self.retire();
            }
            self.finish(flight.invocation, outcome);
            if fresh_process && !self.queue.is_empty() {
                self.start_instance();
            }
        }
        RuntimeReply::Accepted
    }

    /// Whether every invocation of this function gets a new process (`process_per_invocation`).
    fn is_fresh_per_invocation(&self) -> bool {
        let functions = self
            .shared
            .process_per_invocation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        functions.contains(&self.spec.name)
    }

    /// At the first answer of a process started for a waiting invocation: how long it took
    /// from its start to ask for an event and to answer it, and its peak resident memory so far.
    fn record_cold_start(&mut self) {
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        instance.answers += 1;
        let (true, 1, Some(init)) = (instance.on_demand, instance.answers, instance.initialised_after) else {
            return;
        };
        let cold_start = ColdStart {
            init,
            first_response: instance.started.elapsed(),
            peak_rss_kib: peak_rss_kib(instance.process.pid()),
        };
        let mut cold_starts = self.shared.cold_starts.lock().unwrap_or_else(|p| p.into_inner());
        cold_starts.entry(self.spec.name.clone()).or_default().push(cold_start);
    }

    /// Whether this answer is one of those `answers_to_lose` asks to lose (counting it).
    fn lose_answer(&self) -> bool {
        let mut answers = self
            .shared
            .answers_to_lose
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match answers.get_mut(&self.spec.name) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }

    /// Fails `flight` as Lambda fails an invocation that ran out of time, and ends its
    /// execution environment as Lambda does.
    fn time_out(&mut self, flight: InFlight) {
        let message = format!(
            "RequestId: {} Error: Task timed out after {:.2} seconds",
            flight.invocation.request_id,
            self.shared.invocation_timeout.as_secs_f64()
        );
        self.finish(
            flight.invocation,
            Outcome::Failure(ErrorDocument::new("Sandbox.Timedout", message).into()),
        );
        self.retire();
        if !self.queue.is_empty() {
            self.start_instance();
        }
    }

    fn init_error(&mut self, error: FunctionError) -> RuntimeReply {
        let Some(instance) = self
            .instance
            .as_mut()
            .filter(|instance| instance.phase == Phase::Initializing)
        else {
            return RuntimeReply::InvalidState;
        };
        instance.phase = Phase::InitFailed;
        let description = match serde_json::from_slice::<ErrorDocument>(&error.body) {
            Ok(document) => format!("{}: {}", document.error_type, document.error_message),
            Err(_) => error.error_type.clone(),
        };
        self.init_failed(description, error);
        RuntimeReply::Accepted
    }

    /// Hands the next queued event to the process, if it is waiting for one.
    fn dispatch(&mut self) {
        if self.in_flight.is_some() || self.queue.is_empty() {
            return;
        }
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        if instance.phase != Phase::Ready {
            return;
        }
        let Some(waiter) = instance.waiting.take() else {
            return;
        };
        let Some(invocation) = self.queue.pop_front() else {
            return;
        };
        let timeout = self.shared.invocation_timeout;
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|now| (now + timeout).as_millis())
            .unwrap_or(0);
        let delivery = Delivery {
            request_id: invocation.request_id.clone(),
            deadline_ms,
            invoked_arn: invocation.invoked_arn.clone(),
            trace_id: trace_id(),
            event: invocation.event.clone(),
        };
        match waiter.send(delivery) {
            Ok(()) => {
                self.in_flight = Some(InFlight {
                    invocation,
                    deadline: Instant::now() + timeout,
                })
            }
            // The `/next` request is gone (its connection closed): keep the event for the next.
            Err(_) => self.queue.push_front(invocation),
        }
    }

    /// Notices the exit of the current process and fails what it left unanswered.
    fn check_exit(&mut self) {
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        let Some(status) = instance.process.exited() else {
            return;
        };
        let (number, phase, offset) = (instance.number, instance.phase, instance.log_offset);
        self.retire();
        let tail = self.log.tail_since(offset);
        self.shared
            .service_log
            .line(&format!("{} process {number} exited ({status})", self.spec.name));
        let reason = if tail.is_empty() {
            format!("Runtime exited with error: {status}")
        } else {
            format!(
                "Runtime exited with error: {status}; the end of its log ({}):\n{tail}",
                self.log.path.display()
            )
        };
        match phase {
            Phase::Initializing => {
                let description = format!(
                    "exited ({status}) before asking for an event; the end of {}:\n{tail}",
                    self.log.path.display()
                );
                let error = ErrorDocument::new("Runtime.ExitError", format!("Error: {reason}"));
                self.init_failed(description, error.into());
            }
            Phase::Ready => {
                if let Some(flight) = self.in_flight.take() {
                    let message = format!("RequestId: {} Error: {reason}", flight.invocation.request_id);
                    self.finish(
                        flight.invocation,
                        Outcome::Failure(ErrorDocument::new("Runtime.ExitError", message).into()),
                    );
                }
            }
            // It reported why it could not start, and has ended as it should.
            Phase::InitFailed => {}
        }
        if !self.queue.is_empty() {
            self.start_instance();
        }
    }

    /// When the invocation in flight, or the process's init, runs out of time.
    fn deadline(&self) -> Option<Instant> {
        match (&self.in_flight, &self.instance) {
            (Some(flight), _) => Some(flight.deadline),
            (None, Some(instance)) if instance.phase == Phase::Initializing => {
                Some(instance.started + self.shared.init_timeout)
            }
            _ => None,
        }
    }

    fn deadline_passed(&mut self) {
        self.check_exit();
        let now = Instant::now();
        if let Some(flight) = self.in_flight.take_if(|flight| flight.deadline <= now) {
            self.time_out(flight);
        } else if self.deadline().is_some_and(|deadline| deadline <= now) {
            let seconds = self.shared.init_timeout.as_secs();
            self.retire();
            let description = format!("did not ask for an event within {seconds} s of starting");
            let error = ErrorDocument::new("Sandbox.Timedout", format!("Init timed out after {seconds} seconds"));
            self.init_failed(description, error.into());
        }
    }

    /// The current process could not start: `start` hears why, and every waiting invocation
    /// gets `error` (they were all waiting for this start).
    fn init_failed(&mut self, description: String, error: FunctionError) {
        self.shared
            .service_log
            .line(&format!("{} failed to initialise: {description}", self.spec.name));
        if let Some(startup) = self.startup.take() {
            let _ = startup.send(InitReport::Failed(description));
        }
        for invocation in std::mem::take(&mut self.queue) {
            self.finish(invocation, Outcome::Failure(error.clone()));
        }
    }

    /// Answers an invocation and logs it.
    fn finish(&self, invocation: Invocation, outcome: Outcome) {
        let result = match &outcome {
            Outcome::Success(_) => "ok".to_string(),
            Outcome::Failure(error) => format!("error {}", error.error_type),
        };
        self.shared.service_log.line(&format!(
            "{} {} {} ms {result}",
            self.spec.name,
            invocation.request_id,
            invocation.received.elapsed().as_millis()
        ));
        if let Some(reply) = invocation.reply {
            let _ = reply.send(outcome);
        }
    }

    /// A cold start: a new process with a Runtime API of its own.
    fn start_instance(&mut self) {
        self.instances_started += 1;
        let number = self.instances_started;
        let on_demand = !self.queue.is_empty();
        match Instance::spawn(&self.spec, &self.shared, &self.log, number, &self.mailbox, on_demand) {
            Ok(instance) => {
                self.shared.service_log.line(&format!(
                    "{} cold start: process {number}, pid {}",
                    self.spec.name,
                    instance.process.pid()
                ));
                self.pids().insert(self.spec.name.clone(), instance.process.pid());
                self.instance = Some(instance);
            }
            Err(StackError(problem)) => {
                // What Lambda calls a bootstrap it cannot run.
                let error = ErrorDocument::new("Runtime.InvalidEntrypoint", problem.clone());
                self.init_failed(problem, error.into());
            }
        }
    }

    /// Ends the current process (on a blocking thread: stopping waits for it to exit).
    fn retire(&mut self) {
        if let Some(instance) = self.instance.take() {
            self.pids().remove(&self.spec.name);
            tokio::task::spawn_blocking(move || drop(instance));
        }
    }

    /// Stops the process and waits until it is gone; what is still waiting is dropped (its
    /// callers are answered that the service stopped).
    async fn stop(&mut self) {
        self.queue.clear();
        self.in_flight = None;
        if let Some(instance) = self.instance.take() {
            self.pids().remove(&self.spec.name);
            let _ = tokio::task::spawn_blocking(move || drop(instance)).await;
        }
    }

    fn pids(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.shared.pids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A process's peak resident set size (`VmHWM` of /proc/<pid>/status), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
