//! The local Lambda service with the workspace's real function binaries: invocations by name and
//! ARN, handler errors as AWS reports them, concurrent invocations, a process killed or exiting
//! mid-life, functions that cannot initialise, time-outs, unknown functions, and the requests it
//! passes to the emulator unchanged. Exits and init errors no real function makes on purpose
//! come from a few lines of Python speaking the Runtime API.
//!
//! The binaries are built once per run of this file (`cargo build`, so a first run compiles).
//! Each test starts its own service; logs are under `target/tmp/lambda-service/<test>/`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use pipeline_tests::StackError;
use pipeline_tests::lambda_service::{FunctionSpec, LambdaService, ServiceConfig};
use serde::Deserialize;
use serde_json::{Value, json};

const SHIFT_VERSION: &str = "shift-version";
const GET_BUILD_VERSION: &str = "hhvm-get-build-version";
/// An address where nothing answers: the functions under test make no AWS calls, and none
/// may reach AWS by accident.
const NOWHERE: &str = "http://127.0.0.1:9";

/// One line of `cargo build --message-format=json`; only artifacts are of interest.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    target: Option<CargoTarget>,
    executable: Option<PathBuf>,
}

#[derive(Deserialize)]
struct CargoTarget {
    name: String,
}

/// The function binaries this file uses, by binary name, built once.
fn binary(name: &str) -> PathBuf {
    static BINARIES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let binaries = BINARIES.get_or_init(|| {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        // `--workspace` resolves features as `cargo test --workspace` and the local stack's
        // build do, so the dependencies they compiled are reused; `-p` would resolve them for
        // these two packages alone and compile the SDK stack a second time.
        let output = Command::new(env!("CARGO"))
            .args([
                "build",
                "--workspace",
                "--bin",
                SHIFT_VERSION,
                "--bin",
                GET_BUILD_VERSION,
            ])
            .args(["--message-format", "json-render-diagnostics"])
            .current_dir(&workspace)
            .stderr(Stdio::piped())
            .output()
            .expect("run cargo build");
        assert!(
            output.status.success(),
            "cargo build of the function binaries failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<CargoMessage>(line).ok())
            .filter(|message| message.reason == "compiler-artifact")
            .filter_map(|message| Some((message.target?.name, message.executable?)))
            .collect()
    });
    binaries
        .get(name)
        .unwrap_or_else(|| panic!("cargo build made no binary {name}: {binaries:?}"))
        .clone()
}

fn function(name: &str, binary_path: PathBuf, environment: &[(&str, &str)]) -> FunctionSpec {
    FunctionSpec {
        name: name.to_string(),
        binary: binary_path,
        environment: environment
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn shift_version() -> FunctionSpec {
    function(SHIFT_VERSION, binary(SHIFT_VERSION), &[])
}

fn log_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("lambda-service")
        .join(test);
    // Each run starts with empty logs; a directory that is not there is fine.
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(test: &str, functions: Vec<FunctionSpec>, upstream_port: u16) -> ServiceConfig {
    let common = [
        ("AWS_ENDPOINT_URL", NOWHERE),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("LOG_FORMAT", "text"),
    ];
    let common = common.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ServiceConfig::new(functions, common, upstream_port, log_dir(test))
}

async fn start(test: &str, functions: Vec<FunctionSpec>, upstream_port: u16) -> Result<LambdaService, StackError> {
    LambdaService::start(config(test, functions, upstream_port)).await
}

/// A port nothing listens on, for tests that proxy nothing.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn send(port: u16, method: Method, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Answer {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("a valid request");
    let response = client.request(request).await.expect("the service answers");
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.expect("the whole answer").to_bytes(),
    }
}

/// `POST /2015-03-31/functions/{reference}/invocations`, the reference URL-encoded as the SDKs
/// send it.
async fn invoke(service: &LambdaService, reference: &str, event: &Value) -> Answer {
    invoke_at(service.port(), reference, event).await
}

async fn invoke_at(port: u16, reference: &str, event: &Value) -> Answer {
    let path = format!(
        "/2015-03-31/functions/{}/invocations",
        utf8_percent_encode(reference, NON_ALPHANUMERIC)
    );
    send(port, Method::POST, &path, &[], event.to_string()).await
}

fn assert_succeeded(answer: &Answer) {
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(
        answer.header("x-amz-function-error"),
        None,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

fn assert_function_error(answer: &Answer, error_type: &str) -> String {
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-amz-function-error"), Some("Unhandled"));
    let document = answer.json();
    assert_eq!(document["errorType"], error_type, "{document}");
    document["errorMessage"].as_str().unwrap_or_default().to_string()
}

/// Waits until the service has noticed that `function`'s process `pid` is gone.
async fn wait_until_replaced(service: &LambdaService, function: &str, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while service.process_id(function) == Some(pid) {
        assert!(
            Instant::now() < deadline,
            "{function}'s process {pid} still counts as running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A function of a few lines of script, for exits no real function makes on purpose.
fn script_function(test: &str, name: &str, script: &str) -> FunctionSpec {
    use std::os::unix::fs::PermissionsExt;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("lambda-service-scripts")
        .join(test);
    std::fs::create_dir_all(&dir).expect("a script directory");
    let path = dir.join(name);
    std::fs::write(&path, script).expect("write the script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("make it executable");
    function(name, path, &[])
}

/// Python that posts a configuration error to `/runtime/init/error` and exits 1, as a
/// function's `main` does when a setting is missing.
const POST_INIT_ERROR: &str = r#"
def post_init_error():
    body = json.dumps({"errorType": "ConfigurationError", "errorMessage": "SOME_SETTING is not set"}).encode()
    request = urllib.request.Request(
        f"http://{api}/2018-06-01/runtime/init/error",
        data=body,
        method="POST",
        headers={"Lambda-Runtime-Function-Error-Type": "Runtime.InitError"},
    )
    urllib.request.urlopen(request).read()
    sys.exit(1)
"#;

const PYTHON_PRELUDE: &str = r#"#!/usr/bin/env python3
import json, os, sys, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
"#;

#[tokio::test]
async fn invokes_by_name_partial_arn_arn_and_qualified_arn() {
    let service = start("by-name-and-arn", vec![shift_version()], unused_port())
        .await
        .expect("shift-version starts");
    let event = json!({"versions": ["4.168.2", "4.167.5"]});
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:shift-version";
    for reference in [
        SHIFT_VERSION.to_string(),
        "123456789012:function:shift-version".to_string(),
        arn.to_string(),
        format!("{arn}:$LATEST"),
    ] {
        let answer = invoke(&service, &reference, &event).await;
        assert_succeeded(&answer);
        assert_eq!(
            answer.json(),
            json!({"versions": ["4.167.5"], "version": "4.168.2"}),
            "invoked as {reference}"
        );
        assert_eq!(answer.header("x-amz-executed-version"), Some("$LATEST"));
        assert!(answer.header("x-amzn-requestid").is_some_and(|id| id.len() == 36));
    }
    // Not URL-encoded, as a hand-written request may send it.
    let raw = format!("/2015-03-31/functions/{arn}:$LATEST/invocations");
    let answer = send(service.port(), Method::POST, &raw, &[], event.to_string()).await;
    assert_succeeded(&answer);
    assert_eq!(answer.json()["version"], "4.168.2");
}

#[tokio::test]
async fn a_handler_error_answers_200_with_the_function_error_header_and_document() {
    let service = start("handler-error", vec![shift_version()], unused_port())
        .await
        .expect("shift-version starts");
    let answer = invoke(&service, SHIFT_VERSION, &json!({"versions": "x"})).await;
    let message = assert_function_error(&answer, "InvalidInput");
    assert!(message.contains("versions"), "{message}");
    // The process lives on and serves the next invocation.
    let answer = invoke(&service, SHIFT_VERSION, &json!({"versions": ["4.1.0"]})).await;
    assert_succeeded(&answer);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_invocations_are_all_answered_each_with_its_own_result() {
    let service = start("concurrent", vec![shift_version()], unused_port())
        .await
        .expect("shift-version starts");
    let port = service.port();
    let mut invocations = tokio::task::JoinSet::new();
    for n in 0..8 {
        invocations.spawn(async move {
            let event = json!({"versions": [format!("4.{n}.0"), "4.1.0"], "n": n});
            (n, invoke_at(port, SHIFT_VERSION, &event).await)
        });
    }
    let mut answered = Vec::new();
    while let Some(joined) = invocations.join_next().await {
        let (n, answer) = joined.expect("an invocation task");
        assert_succeeded(&answer);
        let output = answer.json();
        assert_eq!(output["version"], format!("4.{n}.0"));
        assert_eq!(output["n"], n);
        answered.push(n);
    }
    answered.sort();
    assert_eq!(answered, (0..8).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_killed_process_is_replaced_by_the_next_invocation() {
    let service = start("killed", vec![shift_version()], unused_port())
        .await
        .expect("shift-version starts");
    let event = json!({"versions": ["4.168.2"]});
    assert_succeeded(&invoke(&service, SHIFT_VERSION, &event).await);
    let first = service.process_id(SHIFT_VERSION).expect("a running process");
    // SAFETY: kill(2) of the function's own process group, which the service started.
    unsafe {
        libc::kill(-(first as libc::pid_t), libc::SIGKILL);
    }
    // An invocation sent at the same moment as the kill could reach the dying process, as in
    // Lambda; this one is sent once the service has seen the exit.
    wait_until_replaced(&service, SHIFT_VERSION, first).await;
    let answer = invoke(&service, SHIFT_VERSION, &event).await;
    assert_succeeded(&answer);
    assert_eq!(answer.json()["version"], "4.168.2");
    let second = service.process_id(SHIFT_VERSION).expect("a new process");
    assert_ne!(second, first);
    let log = std::fs::read_to_string(service.service_log()).expect("the service log");
    assert!(log.contains("shift-version cold start: process 2"), "{log}");
}

#[tokio::test]
async fn a_process_that_exits_mid_invocation_fails_it_with_runtime_exit_error() {
    // Takes one event, then exits 7 without answering.
    let script = r#"#!/usr/bin/env python3
import os, sys, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as response:
    event = response.read().decode()
print("giving up on", event, file=sys.stderr, flush=True)
sys.exit(7)
"#;
    let spec = script_function("exits-mid-invocation", "quitter", script);
    let service = start("exits-mid-invocation", vec![spec], unused_port())
        .await
        .expect("the script asks for an event, so it starts");
    for round in 1..=2 {
        let answer = invoke(&service, "quitter", &json!({"round": round})).await;
        let message = assert_function_error(&answer, "Runtime.ExitError");
        assert!(message.contains("exit status: 7"), "{message}");
        assert!(
            message.contains(&format!(r#"giving up on {{"round":{round}}}"#)),
            "{message}"
        );
    }
}

#[tokio::test]
async fn start_names_each_function_that_fails_to_initialise() {
    // DOWNLOADS_BUCKET (and SCRATCH_BUCKET) unset: hhvm-get-build-version cannot configure itself.
    let get_build_version = function(GET_BUILD_VERSION, binary(GET_BUILD_VERSION), &[]);
    let exits = script_function(
        "init-failures",
        "exits-at-once",
        "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n",
    );
    let reports = script_function(
        "init-failures",
        "reports-init-error",
        &format!("{PYTHON_PRELUDE}{POST_INIT_ERROR}post_init_error()\n"),
    );
    let functions = vec![shift_version(), get_build_version, exits, reports];
    let error = match start("init-failures", functions, unused_port()).await {
        Ok(_) => panic!("start succeeded although three functions cannot initialise"),
        Err(StackError(message)) => message,
    };
    eprintln!("start() reported:\n{error}");
    assert!(error.contains("3 of the Lambda functions failed"), "{error}");
    assert!(!error.contains(&format!("- {SHIFT_VERSION}:")), "{error}");

    // The expectation: the function posts its configuration error to /runtime/init/error, and
    // start() reports its errorType and message. A binary that still exits on a configuration
    // error (status 1, the error on stderr) is reported by its exit status and log, which name
    // the variable too; that is accepted until every main.rs reports init errors.
    let line = error
        .lines()
        .find(|line| line.starts_with(&format!("- {GET_BUILD_VERSION}:")))
        .unwrap_or_else(|| panic!("{GET_BUILD_VERSION} is not named: {error}"));
    let reported_init_error = line.contains("ConfigurationError");
    let reported_exit = line.contains("exit status: 1");
    assert!(reported_init_error || reported_exit, "{error}");
    assert!(error.contains("DOWNLOADS_BUCKET"), "{error}");
    eprintln!(
        "{GET_BUILD_VERSION} reported {}",
        if reported_init_error {
            "an init error (ConfigurationError)"
        } else {
            "an exit (status 1)"
        }
    );

    assert!(error.contains("- exits-at-once: exited (exit status: 3)"), "{error}");
    assert!(error.contains("cannot start"), "{error}");
    assert!(
        error
            .lines()
            .any(|line| line == "- reports-init-error: ConfigurationError: SOME_SETTING is not set"),
        "{error}"
    );
}

#[tokio::test]
async fn an_init_error_at_a_cold_start_is_the_answer_of_the_invocation_that_waited_for_it() {
    // The first process takes one event and exits; every later one fails its init.
    let script = format!(
        r#"{PYTHON_PRELUDE}{POST_INIT_ERROR}
served = os.path.join(os.path.dirname(os.path.abspath(__file__)), "served-once")
if os.path.exists(served):
    post_init_error()
open(served, "w").close()
urllib.request.urlopen(f"http://{{api}}/2018-06-01/runtime/invocation/next").read()
sys.exit(0)
"#
    );
    let test = "init-error-at-cold-start";
    let spec = script_function(test, "flaky", &script);
    let _ = std::fs::remove_file(spec.binary.with_file_name("served-once"));
    let service = start(test, vec![spec], unused_port())
        .await
        .expect("the first process asks for an event");
    let answer = invoke(&service, "flaky", &json!({})).await;
    let message = assert_function_error(&answer, "Runtime.ExitError");
    assert!(message.contains("exit status: 0"), "{message}");
    for _ in 0..2 {
        // Each invocation tries a new cold start, as Lambda does after a failed init.
        let answer = invoke(&service, "flaky", &json!({})).await;
        let message = assert_function_error(&answer, "ConfigurationError");
        assert_eq!(message, "SOME_SETTING is not set");
    }
    let log = std::fs::read_to_string(service.service_log()).expect("the service log");
    assert!(log.contains("flaky cold start: process 3"), "{log}");
}

#[tokio::test]
async fn an_invocation_past_its_timeout_fails_with_sandbox_timedout_and_ends_the_process() {
    // Takes an event and never answers.
    let script = format!(
        r#"{PYTHON_PRELUDE}import time
urllib.request.urlopen(f"http://{{api}}/2018-06-01/runtime/invocation/next").read()
time.sleep(600)
"#
    );
    let test = "timeout";
    let mut config = config(test, vec![script_function(test, "sleeper", &script)], unused_port());
    config.invocation_timeout = Duration::from_secs(1);
    let service = LambdaService::start(config)
        .await
        .expect("the script asks for an event");
    let first = service.process_id("sleeper").expect("a running process");
    let answer = invoke(&service, "sleeper", &json!({})).await;
    let message = assert_function_error(&answer, "Sandbox.Timedout");
    assert!(message.ends_with("Task timed out after 1.00 seconds"), "{message}");
    assert_ne!(service.process_id("sleeper"), Some(first));
}

#[tokio::test]
async fn a_lost_answer_fails_as_a_time_out_after_the_work_was_done() {
    let test = "lost-answer";
    let record = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("lambda-service-{test}-events"));
    let _ = std::fs::remove_file(&record);
    // Appends each event it takes to a file (its side effect), then answers.
    let script = format!(
        r#"{PYTHON_PRELUDE}while True:
    with urllib.request.urlopen(f"http://{{api}}/2018-06-01/runtime/invocation/next") as next:
        request_id = next.headers["Lambda-Runtime-Aws-Request-Id"]
        event = next.read()
    with open({record:?}, "ab") as handled:
        handled.write(event + b"\n")
    urllib.request.urlopen(urllib.request.Request(
        f"http://{{api}}/2018-06-01/runtime/invocation/{{request_id}}/response", data=b'{{"done": true}}', method="POST")).read()
"#,
        record = record.display().to_string()
    );
    let service = start(test, vec![script_function(test, "launcher", &script)], unused_port())
        .await
        .expect("the script asks for an event");
    let first = service.process_id("launcher").expect("a running process");
    service.lose_answers_of("launcher", 1);

    let answer = invoke(&service, "launcher", &json!({"attempt": 1})).await;
    let message = assert_function_error(&answer, "Sandbox.Timedout");
    assert!(message.contains("Task timed out after"), "{message}");
    let handled = std::fs::read_to_string(&record).expect("the first event was handled");
    assert_eq!(handled.lines().count(), 1, "the work was done: {handled}");
    wait_until_replaced(&service, "launcher", first).await;

    // Only the one answer was lost: the next invocation, on a new process, is answered.
    let answer = invoke(&service, "launcher", &json!({"attempt": 2})).await;
    assert_succeeded(&answer);
    assert_eq!(answer.json(), json!({"done": true}));
    let handled = std::fs::read_to_string(&record).expect("the record");
    assert_eq!(handled.lines().count(), 2, "{handled}");
}

#[tokio::test]
async fn an_unknown_function_answers_404_resource_not_found() {
    let service = start("unknown-function", vec![shift_version()], unused_port())
        .await
        .expect("shift-version starts");
    let answer = invoke(&service, "no-such-function", &json!({})).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("x-amzn-errortype"), Some("ResourceNotFoundException"));
    assert_eq!(
        answer.json(),
        json!({"Type": "User", "message": "Function not found: arn:aws:lambda:us-east-1:123456789012:function:no-such-function"})
    );
}

/// An upstream that answers 418 with what it received, as JSON.
async fn start_echo_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("an address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let headers: serde_json::Map<String, Value> = parts
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
                        .collect();
                    let echo = json!({
                        "method": parts.method.as_str(),
                        "target": parts.uri.to_string(),
                        "headers": headers,
                        "body": String::from_utf8_lossy(&body),
                    });
                    let response = Response::builder()
                        .status(418)
                        .header("x-upstream", "echo")
                        .body(Full::new(Bytes::from(echo.to_string())))
                        .expect("a valid response");
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn other_requests_are_passed_to_the_upstream_unchanged() {
    let upstream = start_echo_upstream().await;
    let service = start("proxy", vec![shift_version()], upstream)
        .await
        .expect("shift-version starts");
    let answer = send(
        service.port(),
        Method::PUT,
        "/some/bucket/key?tagging&x-id=PutObject",
        &[
            ("x-amz-target", "AWSStepFunctions.StartExecution"),
            ("content-type", "application/x-amz-json-1.0"),
        ],
        "the body",
    )
    .await;
    assert_eq!(answer.status, 418);
    assert_eq!(answer.header("x-upstream"), Some("echo"));
    let echo = answer.json();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["target"], "/some/bucket/key?tagging&x-id=PutObject");
    assert_eq!(echo["body"], "the body");
    assert_eq!(echo["headers"]["x-amz-target"], "AWSStepFunctions.StartExecution");
    assert_eq!(echo["headers"]["content-type"], "application/x-amz-json-1.0");
    assert_eq!(echo["headers"]["host"], format!("127.0.0.1:{upstream}"));

    // Only a POST of the invocations path invokes; a GET of it belongs to the upstream.
    let path = "/2015-03-31/functions/shift-version/invocations";
    let answer = send(service.port(), Method::GET, path, &[], Bytes::new()).await;
    assert_eq!(answer.status, 418);
    assert_eq!(answer.json()["target"], path);
}

#[tokio::test]
async fn with_a_process_per_invocation_each_answer_is_a_measured_cold_start() {
    let service = start("cold-starts", vec![shift_version()], unused_port())
        .await
        .expect("shift-version starts");
    let event = json!({"versions": ["4.168.2"]});
    // The process started with the service answers first: no cold start of an invocation.
    assert_succeeded(&invoke(&service, SHIFT_VERSION, &event).await);
    assert!(service.cold_starts(SHIFT_VERSION).is_empty());
    service.process_per_invocation(SHIFT_VERSION);
    let mut pids = Vec::new();
    for _ in 0..3 {
        assert_succeeded(&invoke(&service, SHIFT_VERSION, &event).await);
        pids.push(service.process_id(SHIFT_VERSION));
    }
    let cold_starts = service.cold_starts(SHIFT_VERSION);
    // The first of these still came from the service's own process, replaced after it.
    assert_eq!(cold_starts.len(), 2, "{cold_starts:?}");
    for cold_start in &cold_starts {
        assert!(cold_start.init <= cold_start.first_response, "{cold_start:?}");
        assert!(cold_start.peak_rss_kib.is_some_and(|kib| kib > 0), "{cold_start:?}");
    }
    // Each answer ends its process: none is left between invocations.
    assert_eq!(pids, [None, None, None]);
}
