//! Each command: the AWS calls it makes (small functions taking their clients) around the pure
//! pieces of `requests` and `status`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use pipeline_aws::s3::ObjectSummary;
use pipeline_core::Version;
use serde_json::{Value, json};

use crate::args::{Cli, Command, FollowArgs};
use crate::deployment::{Deployment, discover};
use crate::display::Display;
use crate::error::{CliError, CliResult};
use crate::history::{Event, Histories, execution_history};
use crate::requests::{self, LogJob, PlanRequest, StartRequest};
use crate::status::{ExecutionView, approval_token, render};

/// The clients every command may use, from one SDK configuration.
pub struct Clients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig) -> Clients {
        Clients {
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            s3: pipeline_aws::s3_client(config),
        }
    }
}

/// Runs the command line's command. Each command checks what it was given (versions, distros,
/// payloads) before the stack is read, so a typo is reported as such even without AWS.
pub async fn run(cli: Cli, clients: &Clients) -> CliResult<()> {
    let now = chrono::Utc::now();
    let json = cli.json;
    let stack = cli.stack;
    let deployment = || discover(&clients.cloudformation, &stack);
    match cli.command {
        Command::Build {
            version,
            distros,
            force,
            polling,
            follow,
        } => {
            let request = requests::build(&version, &distros, force, polling.polling(), now)?;
            start(clients, &deployment().await?, request, &follow, json).await
        }
        Command::Release {
            versions,
            gate,
            polling,
            follow,
        } => {
            let request = requests::release(&versions, gate.require_approval(), polling.polling(), now)?;
            start(clients, &deployment().await?, request, &follow, json).await
        }
        Command::Publish {
            version,
            distros,
            gate,
            polling,
            follow,
        } => {
            let request = requests::publish(&version, &distros, gate.require_approval(), polling.polling(), now)?;
            start(clients, &deployment().await?, request, &follow, json).await
        }
        Command::Nightly { force, polling, follow } => {
            let event = requests::nightly_event(force, polling.polling());
            nightly(clients, &deployment().await?, event, &follow, json).await
        }
        Command::Plan {
            versions,
            distros,
            force,
            gate,
        } => {
            let asked = requests::plan(&versions, &distros, force, gate.require_approval())?;
            plan(clients, &deployment().await?, &asked, json).await
        }
        Command::Reindex => {
            let answer = invoke_function(clients, &deployment().await?, "create-s3-index-html", json!({})).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", crate::index_pages::render(&answer));
            }
            Ok(())
        }
        Command::Status {
            target,
            watch,
            interval,
        } => status(clients, &deployment().await?, &target, watch, interval, json).await,
        Command::Approve { execution } => answer_gate(clients, &deployment().await?, &execution, None).await,
        Command::Reject { execution, reason } => {
            answer_gate(clients, &deployment().await?, &execution, Some(&reason)).await
        }
        Command::Logs {
            version,
            distro,
            update,
            follow,
            interval,
        } => {
            let job = requests::log_job(&version, distro.as_deref(), update)?;
            let deployment = deployment().await?;
            if follow {
                follow_log(clients, &deployment, &job, interval).await
            } else {
                print_log(clients, &deployment, &job).await
            }
        }
        Command::Rerun { execution, follow } => {
            let deployment = deployment().await?;
            let arn = find_execution(&clients.sfn, &deployment, &execution).await?;
            let described = describe(&clients.sfn, &arn).await?;
            let machine = deployment.machine_of_execution(&arn).ok_or_else(|| {
                CliError::NotFound(format!("{arn} is not an execution of stack {}", deployment.stack))
            })?;
            let input: Value = serde_json::from_str(described.input().unwrap_or("{}"))
                .map_err(|error| CliError::Failed(format!("the input of {arn} is not JSON: {error}")))?;
            let request = requests::rerun(machine, described.name().unwrap_or("execution"), input, now);
            start(clients, &deployment, request, &follow, json).await
        }
        Command::Redrive { execution, follow } => {
            let deployment = deployment().await?;
            let arn = find_execution(&clients.sfn, &deployment, &execution).await?;
            clients
                .sfn
                .redrive_execution()
                .execution_arn(&arn)
                .send()
                .await
                .map_err(redrive_error)?;
            eprintln!("redriving {arn}");
            follow_or_detach(clients, &deployment, &arn, &follow, json).await
        }
        Command::Invoke { function, payload } => {
            let payload = read_payload(&payload)?;
            let answer = invoke_function(clients, &deployment().await?, &function, payload).await?;
            print_json(&answer);
            Ok(())
        }
        Command::History { execution, state, all } => {
            let arn = find_execution(&clients.sfn, &deployment().await?, &execution).await?;
            let events = execution_history(&clients.sfn, &arn).await?;
            print_history(&events, state.as_deref(), all, json)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "hhvmctl", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// An endpoint without RedriveExecution (an emulator: moto answers HTTP 500 with an HTML page)
/// answers with no AWS error at all: say so, and what works instead, rather than the SDK's
/// parse error of the page.
fn redrive_error(
    error: aws_sdk_sfn::error::SdkError<
        aws_sdk_sfn::operation::redrive_execution::RedriveExecutionError,
        aws_sdk_sfn::config::http::HttpResponse,
    >,
) -> CliError {
    use aws_sdk_sfn::error::ProvideErrorMetadata;
    let status = error.raw_response().map(|response| response.status().as_u16());
    let unanswered = error.as_service_error().is_some_and(|e| e.code().is_none());
    match status {
        Some(status) if unanswered => CliError::Aws {
            operation: "Step Functions RedriveExecution".to_string(),
            message: format!(
                "the endpoint answered HTTP {status} without an AWS error: it has no RedriveExecution (the local emulator lacks it); `hhvmctl rerun` starts the execution again, skipping finished work"
            ),
        },
        _ => CliError::aws("Step Functions RedriveExecution", error),
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// `--payload`: JSON, or `@FILE` holding it.
fn read_payload(text: &str) -> CliResult<Value> {
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| CliError::BadArgument(format!("--payload @{path}: {error}")))?,
        None => text.to_string(),
    };
    serde_json::from_str(&text).map_err(|error| CliError::BadArgument(format!("--payload is not JSON: {error}")))
}

/// Starts `request`'s execution and follows it (or returns at once with `--detach`).
async fn start(
    clients: &Clients,
    deployment: &Deployment,
    request: StartRequest,
    follow: &FollowArgs,
    json: bool,
) -> CliResult<()> {
    let machine_arn = deployment.machine(&request.machine)?;
    let started = clients
        .sfn
        .start_execution()
        .state_machine_arn(machine_arn)
        .name(&request.name)
        .input(request.input.to_string())
        .send()
        .await
        .map_err(|error| CliError::aws("Step Functions StartExecution", error))?;
    let arn = started.execution_arn().to_string();
    eprintln!("started {} {} with {}", request.machine, request.name, request.input);
    follow_or_detach(clients, deployment, &arn, follow, json).await
}

async fn follow_or_detach(
    clients: &Clients,
    deployment: &Deployment,
    arn: &str,
    follow: &FollowArgs,
    json: bool,
) -> CliResult<()> {
    if follow.detach {
        if json {
            print_json(&json!({"executionArn": arn}));
        } else {
            println!("{arn}");
        }
        return Ok(());
    }
    let view = watch(clients, deployment, arn, follow.interval).await?;
    finish(&view, json)
}

/// Prints the final view and turns a failed run into exit status 1.
fn finish(view: &ExecutionView, json: bool) -> CliResult<()> {
    if json {
        print_json(&serde_json::to_value(view).unwrap_or(Value::Null));
    } else {
        print!("{}", render(view, now_seconds()));
    }
    if view.succeeded() {
        Ok(())
    } else {
        let failure = view.failure.as_ref();
        Err(CliError::Failed(format!(
            "{} {}: {} at {}; `hhvmctl status {}` shows it again, `hhvmctl rerun {}` starts it again (finished work is skipped)",
            view.name,
            view.status,
            failure.and_then(|f| f.error.as_deref()).unwrap_or("(no error)"),
            failure.and_then(|f| f.step.as_deref()).unwrap_or("(no step)"),
            view.name,
            view.name
        )))
    }
}

fn now_seconds() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

async fn describe(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
) -> CliResult<aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput> {
    sfn.describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|error| {
            if error
                .as_service_error()
                .is_some_and(|e| e.is_execution_does_not_exist())
            {
                CliError::NotFound(format!("no execution {arn}"))
            } else {
                CliError::aws("Step Functions DescribeExecution", error)
            }
        })
}

/// An execution given by ARN, or by name (looked for under each of the stack's machines).
pub async fn find_execution(sfn: &aws_sdk_sfn::Client, deployment: &Deployment, execution: &str) -> CliResult<String> {
    if execution.starts_with("arn:") {
        describe(sfn, execution).await?;
        return Ok(execution.to_string());
    }
    for machine_arn in deployment.machines.values() {
        let Some(arn) = pipeline_aws::sfn::execution_arn(machine_arn, execution) else {
            continue;
        };
        match describe(sfn, &arn).await {
            Ok(_) => return Ok(arn),
            Err(CliError::NotFound(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(CliError::NotFound(format!(
        "no execution named {execution} in stack {} ({}); give its ARN, or see the Step Functions console",
        deployment.stack,
        deployment.machines.keys().cloned().collect::<Vec<_>>().join(", ")
    )))
}

/// The view of execution `arn` and, recursively, its children.
pub async fn load_view(clients: &Clients, deployment: &Deployment, arn: &str) -> CliResult<ExecutionView> {
    load_view_from(clients, deployment, arn, &mut Histories::default()).await
}

/// `load_view`, with the histories read so far: a watch refreshes its view every few seconds
/// for hours, and reads only what each execution's history gained since (`Histories`).
async fn load_view_from(
    clients: &Clients,
    deployment: &Deployment,
    arn: &str,
    histories: &mut Histories,
) -> CliResult<ExecutionView> {
    let mut pending = vec![arn.to_string()];
    let mut views: Vec<ExecutionView> = Vec::new();
    // Breadth first, then assembled bottom-up: children are views of their own.
    while let Some(next) = pending.pop() {
        let events = histories.refresh(&clients.sfn, &next).await?;
        let machine = deployment.machine_of_execution(&next).unwrap_or("execution");
        let view = ExecutionView::from_history(&next, machine, events, deployment.scratch_bucket.as_deref());
        pending.extend(view.child_arns.iter().rev().cloned());
        views.push(view);
    }
    Ok(assemble(&views, arn))
}

fn assemble(views: &[ExecutionView], arn: &str) -> ExecutionView {
    let mut view = views
        .iter()
        .find(|view| view.arn == arn)
        .cloned()
        .expect("every ARN asked for was loaded");
    for child in view.child_arns.clone() {
        if views.iter().any(|v| v.arn == child) {
            view.add_child(assemble(views, &child));
        }
    }
    view
}

/// Follows `arn` until it and its children have ended, showing the view as it changes: on a
/// terminal one live line per phase and worker; otherwise a plain line for each change.
async fn watch(clients: &Clients, deployment: &Deployment, arn: &str, interval: u64) -> CliResult<ExecutionView> {
    let mut display = Display::on_stderr();
    let mut histories = Histories::default();
    loop {
        let view = load_view_from(clients, deployment, arn, &mut histories).await?;
        display.show(&crate::status::lines(&view, now_seconds()));
        if view.is_over() {
            display.finish();
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_secs(interval.max(1))).await;
    }
}

async fn status(
    clients: &Clients,
    deployment: &Deployment,
    target: &str,
    watching: bool,
    interval: u64,
    json: bool,
) -> CliResult<()> {
    if let Ok(version) = target.parse::<Version>() {
        // A version: what the pipeline's own check says of it (markers, the signed index).
        let answer = invoke_function(
            clients,
            deployment,
            "hhvm-get-build-status",
            json!({"version": version.to_string()}),
        )
        .await?;
        if json {
            print_json(&answer);
        } else {
            print!("{}", crate::version_status::render(&answer));
        }
        return Ok(());
    }
    let arn = find_execution(&clients.sfn, deployment, target).await?;
    let view = if watching {
        watch(clients, deployment, &arn, interval).await?
    } else {
        load_view(clients, deployment, &arn).await?
    };
    if json {
        print_json(&serde_json::to_value(&view).unwrap_or(Value::Null));
    } else {
        print!("{}", render(&view, now_seconds()));
    }
    Ok(())
}

/// The execution held by the release gate: `view` itself, or a child of it that waits.
fn waiting_for_approval(view: &ExecutionView) -> Option<&ExecutionView> {
    if view.awaiting_approval {
        return Some(view);
    }
    view.children.iter().find_map(waiting_for_approval)
}

/// `approve` (no reason) or `reject` (a reason): answers the release gate's task token.
async fn answer_gate(
    clients: &Clients,
    deployment: &Deployment,
    execution: &str,
    rejection: Option<&str>,
) -> CliResult<()> {
    let arn = find_execution(&clients.sfn, deployment, execution).await?;
    let view = load_view(clients, deployment, &arn).await?;
    let Some(waiting) = waiting_for_approval(&view) else {
        return Err(CliError::NotFound(format!(
            "{} ({}) is not waiting for approval; `hhvmctl status {}` shows where it is",
            view.name, view.status, view.name
        )));
    };
    let events = execution_history(&clients.sfn, &waiting.arn).await?;
    let token = approval_token(&events).ok_or_else(|| {
        CliError::NotFound(format!(
            "{} waits for approval, but its history holds no task token",
            waiting.name
        ))
    })?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "an operator".to_string());
    match rejection {
        None => {
            let output = json!({"approvedBy": operator, "approvedAt": chrono::Utc::now().to_rfc3339()});
            clients
                .sfn
                .send_task_success()
                .task_token(token)
                .output(output.to_string())
                .send()
                .await
                .map_err(|error| CliError::aws("Step Functions SendTaskSuccess", error))?;
            println!("approved {} ({} may publish)", waiting.name, waiting.versions.join(" "));
        }
        Some(reason) => {
            clients
                .sfn
                .send_task_failure()
                .task_token(token)
                .error("ReleaseRejected")
                .cause(format!("rejected by {operator}: {reason}"))
                .send()
                .await
                .map_err(|error| CliError::aws("Step Functions SendTaskFailure", error))?;
            println!("rejected {}: {reason}", waiting.name);
        }
    }
    Ok(())
}

/// A function's error answer: its `errorType` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub message: String,
}

/// Invokes a function of the stack: its answer, or the error it answered with.
async fn invoke_answer(
    clients: &Clients,
    deployment: &Deployment,
    function: &str,
    payload: &Value,
) -> CliResult<Result<Value, FunctionError>> {
    let name = deployment.function(function)?;
    let answer = clients
        .lambda
        .invoke()
        .function_name(name)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .map_err(|error| CliError::aws("Lambda Invoke", error))?;
    let body = answer.payload().map(|blob| blob.as_ref().to_vec()).unwrap_or_default();
    let value: Value =
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if answer.function_error().is_none() {
        return Ok(Ok(value));
    }
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    Ok(Err(FunctionError {
        error_type: field("errorType").unwrap_or_else(|| "(no errorType)".to_string()),
        message: field("errorMessage").unwrap_or_default(),
    }))
}

/// Invokes a function of the stack; a function error is a failure showing its `errorType` and
/// message.
async fn invoke_function(
    clients: &Clients,
    deployment: &Deployment,
    function: &str,
    payload: Value,
) -> CliResult<Value> {
    invoke_answer(clients, deployment, function, &payload)
        .await?
        .map_err(|error| {
            CliError::Failed(format!(
                "{} failed: {}: {}",
                deployment.function(function).unwrap_or(function),
                error.error_type,
                error.message
            ))
        })
}

async fn nightly(
    clients: &Clients,
    deployment: &Deployment,
    event: Value,
    follow: &FollowArgs,
    json: bool,
) -> CliResult<()> {
    let answer = invoke_function(clients, deployment, "hhvm-start-nightly", event).await?;
    match answer.get("executionArn").and_then(Value::as_str) {
        Some(arn) => {
            eprintln!(
                "nightly {} started as {}",
                answer["version"].as_str().unwrap_or("?"),
                answer["executionName"].as_str().unwrap_or(arn)
            );
            follow_or_detach(clients, deployment, arn, follow, json).await
        }
        None if json => {
            print_json(&answer);
            Ok(())
        }
        None => {
            println!("{}", skipped_nightly(&answer));
            Ok(())
        }
    }
}

/// Why `hhvm-start-nightly` started nothing (the source has not moved since the last published
/// nightly), as one line.
fn skipped_nightly(answer: &Value) -> String {
    format!(
        "nightly {} not started: {} (`hhvmctl nightly --force`)",
        answer["version"].as_str().unwrap_or("?"),
        answer["skipped"]
            .as_str()
            .unwrap_or("hhvm-start-nightly gave no reason")
    )
}

/// The newest log of `job` (its latest worker's), if any is there yet.
async fn newest_log(clients: &Clients, bucket: &str, job: &LogJob) -> CliResult<Option<ObjectSummary>> {
    let objects = pipeline_aws::s3::list_objects(&clients.s3, bucket, Some(&job.prefix()))
        .collect_all()
        .await?;
    Ok(pipeline_aws::s3::newest_log(&objects).cloned())
}

/// Prints the newest log of a job (a distro's build, the source tarball, the repository update).
async fn print_log(clients: &Clients, deployment: &Deployment, job: &LogJob) -> CliResult<()> {
    let bucket = deployment.scratch_bucket()?;
    let Some(newest) = newest_log(clients, bucket, job).await? else {
        return Err(CliError::NotFound(format!(
            "no log under s3://{bucket}/{}: no worker has uploaded one yet (a running job uploads its log every minute; `--follow` waits for it)",
            job.prefix()
        )));
    };
    let Some(piece) = log_piece(&clients.s3, bucket, &newest.key, 0).await? else {
        return Err(CliError::NotFound(format!("s3://{bucket}/{} is gone", newest.key)));
    };
    eprintln!(
        "s3://{bucket}/{}{}",
        newest.key,
        if piece.complete {
            ""
        } else {
            " (the job is still running)"
        }
    );
    print!("{}", String::from_utf8_lossy(&piece.bytes));
    Ok(())
}

/// `logs --follow`: waits for the job's log, prints it as its worker uploads it, and returns
/// once the upload that says the job has ended (`complete=true`) is printed.
async fn follow_log(clients: &Clients, deployment: &Deployment, job: &LogJob, interval: u64) -> CliResult<()> {
    let bucket = deployment.scratch_bucket()?;
    let waiting = Spinner::new(format!("waiting for a log under s3://{bucket}/{}", job.prefix()));
    let mut following: Option<(String, u64)> = None;
    loop {
        if let Some(newest) = newest_log(clients, bucket, job).await? {
            let printed = match &following {
                // A newer worker's log (a retry) starts over.
                Some((key, printed)) if key == &newest.key => *printed,
                _ => {
                    waiting.finish();
                    eprintln!("s3://{bucket}/{}", newest.key);
                    0
                }
            };
            if let Some(piece) = log_piece(&clients.s3, bucket, &newest.key, printed).await? {
                print!("{}", String::from_utf8_lossy(&piece.bytes));
                let _ = std::io::stdout().flush();
                if piece.complete {
                    return Ok(());
                }
                following = Some((newest.key.clone(), printed + piece.bytes.len() as u64));
            }
        }
        tokio::time::sleep(Duration::from_secs(interval.max(1))).await;
    }
}

/// What a log holds from byte `from` on, and whether its worker's job has ended.
struct LogPiece {
    bytes: Vec<u8>,
    complete: bool,
}

/// The log at `key` from byte `from` (a ranged GET; a HEAD when nothing is new); `None` when it
/// is gone.
async fn log_piece(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, from: u64) -> CliResult<Option<LogPiece>> {
    let complete = |metadata: Option<&std::collections::HashMap<String, String>>| {
        metadata.and_then(|m| m.get(LOG_COMPLETE_METADATA)).map(String::as_str) == Some("true")
    };
    let head = match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => head,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(None),
        Err(error) => return Err(CliError::aws("S3 HeadObject", error)),
    };
    let size = head.content_length().unwrap_or(0).max(0) as u64;
    if size <= from {
        return Ok(Some(LogPiece {
            bytes: Vec::new(),
            complete: complete(head.metadata()),
        }));
    }
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={from}-"))
        .if_match(head.e_tag().unwrap_or("*"))
        .send()
        .await;
    let object = match object {
        Ok(object) => object,
        // Replaced between the two calls by a newer upload: the next look reads that one.
        Err(error) if error.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
            return Ok(Some(LogPiece {
                bytes: Vec::new(),
                complete: false,
            }));
        }
        Err(error) => return Err(CliError::aws("S3 GetObject", error)),
    };
    let is_complete = complete(object.metadata());
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|error| CliError::aws("S3 GetObject (body)", error))?
        .to_vec();
    Ok(Some(LogPiece {
        bytes,
        complete: is_complete,
    }))
}

/// The metadata (`x-amz-meta-complete: true`) of a worker's last log upload (docs/workers.md).
const LOG_COMPLETE_METADATA: &str = "complete";

/// A spinner on a terminal for a wait with nothing else to show; a plain line otherwise.
struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn new(message: String) -> Spinner {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner().with_message(message);
            bar.enable_steady_tick(Duration::from_millis(250));
            Spinner(Some(bar))
        } else {
            eprintln!("{message}");
            Spinner(None)
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// `plan`: for each version, the machines' read-only first steps and the branch's suites.
async fn plan(clients: &Clients, deployment: &Deployment, asked: &PlanRequest, json: bool) -> CliResult<()> {
    let mut plans = Vec::new();
    for version in &asked.versions {
        let build = invoke_function(
            clients,
            deployment,
            "hhvm-get-build-version",
            asked.build_input(version),
        )
        .await?;
        let source_tarball = match invoke_answer(clients, deployment, "hhvm-have-source-tarball", &build).await? {
            Ok(_) => Ok(()),
            Err(error) if error.error_type == "SourceTarballNotFound" => Err(error.message),
            Err(error) => {
                return Err(CliError::Failed(format!(
                    "hhvm-have-source-tarball failed: {}: {}",
                    error.error_type, error.message
                )));
            }
        };
        let mut status_input = json!({"version": build["version"], "packagingBranch": build["packagingBranch"]});
        if let Some(distros) = build.get("distros") {
            status_input["distros"] = distros.clone();
        }
        let status = invoke_function(clients, deployment, "hhvm-get-build-status", status_input).await?;
        let branch = build["packagingBranch"].as_str().unwrap_or_default();
        let suite_templates = debian_repositories(deployment, branch).await?;
        let answers = crate::plan::Answers {
            build: &build,
            source_tarball,
            status: &status,
            suite_templates: &suite_templates,
            force: asked.force,
        };
        plans.push(crate::plan::plan(&answers).map_err(|problem| {
            CliError::Failed(format!(
                "the pipeline's answers for {version} cannot be planned from: {problem}"
            ))
        })?);
    }
    if json {
        print_json(&serde_json::to_value(&plans).unwrap_or(Value::Null));
    } else {
        print!("{}", crate::plan::render(&plans));
    }
    Ok(())
}

/// The packaging branch's `DEBIAN_REPOSITORIES`, read beside its CURRENT_TARGETS.
async fn debian_repositories(deployment: &Deployment, branch: &str) -> CliResult<Vec<String>> {
    let branch: pipeline_core::PackagingBranch = branch.parse()?;
    let url = deployment
        .current_targets_url
        .as_deref()
        .and_then(|template| pipeline_aws::packaging::packaging_file_url(template, &branch, "DEBIAN_REPOSITORIES"))
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "stack {} has no CurrentTargetsUrl ending in /CURRENT_TARGETS to read {branch}'s DEBIAN_REPOSITORIES beside",
                deployment.stack
            ))
        })?;
    let text = pipeline_aws::packaging::fetch_text(&url, 64 * 1024)
        .await
        .map_err(|problem| CliError::NotFound(format!("{url}: {problem}")))?;
    Ok(pipeline_core::distro::parse_debian_repositories(&text))
}

/// `history`: each state's entries with input and output (or one state's, or every event).
fn print_history(events: &[Event], state: Option<&str>, all: bool, json: bool) -> CliResult<()> {
    let chosen: Vec<&Event> = events
        .iter()
        .filter(|event| state.is_none_or(|state| event.state.as_deref() == Some(state)))
        .filter(|event| {
            all || state.is_some()
                || event.is_state_entered()
                || event.is_state_exited()
                || event.ends_execution()
                || event.error.is_some()
        })
        .collect();
    if let Some(state) = state
        && chosen.is_empty()
    {
        let mut entered: Vec<&str> = events
            .iter()
            .filter(|event| event.is_state_entered())
            .filter_map(|event| event.state.as_deref())
            .collect();
        entered.dedup();
        return Err(CliError::NotFound(format!(
            "the execution never entered a state named {state:?}; it entered: {}",
            entered.join(", ")
        )));
    }
    if json {
        print_json(&serde_json::to_value(&chosen).unwrap_or(Value::Null));
        return Ok(());
    }
    for event in chosen {
        let what = event.state.as_deref().unwrap_or("");
        println!("#{} {} {what}", event.id, event.kind);
        for (label, value) in [("input", &event.input), ("output", &event.output)] {
            if let Some(value) = value {
                println!("  {label}: {value}");
            }
        }
        if let Some(error) = &event.error {
            println!("  error: {error}: {}", event.cause.as_deref().unwrap_or(""));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_nightly_says_why_and_how_to_build_it_anyway() {
        let answer = json!({
            "version": "2026.12.05",
            "executionName": "nightly-2026-12-05",
            "started": false,
            "skipped": "the source has not moved since nightly 2026.12.04 was published (commit abc); set detail.force to build anyway",
        });
        assert_eq!(
            skipped_nightly(&answer),
            "nightly 2026.12.05 not started: the source has not moved since nightly 2026.12.04 was published \
             (commit abc); set detail.force to build anyway (`hhvmctl nightly --force`)"
        );
    }
}
