//! `local-stack`: the pipeline on 127.0.0.1 (docs/local-stack.md).
//!
//! usage:
//!   local-stack up [--machines DIR]
//!       start everything (the stack deployed from infra/template.yaml, its state machines
//!       included), register the definitions of DIR over them when given, print the endpoints
//!       and each function's environment, and wait for Ctrl-C
//!   local-stack run MACHINE 'JSON INPUT' [--name NAME] [--machines DIR] [--timeout SECONDS]
//!       start everything, run one execution of MACHINE with progress, print the outcome, stop
//!   local-stack pipeline [VERSION] [--machines DIR] [--timeout SECONDS]
//!       start today's nightly with `hhvmctl nightly --force` (hhvm-build-and-publish, as the
//!       schedule starts it) or VERSION with `hhvmctl release VERSION`, follow it with hhvmctl,
//!       show what was published, and check with apt-get that the repository serves the package
//!       with a valid signature

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pipeline_core::Version;
use pipeline_core::polling::MAX_POLL_LIMIT;
use pipeline_tests::published::{apt_download, inspect_publication, repository_and_suite};
use pipeline_tests::{ExecutionOutcome, LocalStack, Options, Progress, StackError, workspace_binary};
use serde_json::Value;

const USAGE: &str = "usage:
  local-stack up [--machines DIR]
  local-stack run MACHINE 'JSON INPUT' [--name NAME] [--machines DIR] [--timeout SECONDS]
  local-stack pipeline [VERSION] [--machines DIR] [--timeout SECONDS]";

/// The distros of the fixture packaging repository's CURRENT_TARGETS: every nightly is built and
/// published for them.
const PUBLISHED_DISTROS: [&str; 2] = ["debian-12-bookworm", "ubuntu-24.04-noble"];

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C and SIGTERM set a flag instead of ending the process, so that the stack stops its
/// processes (which run in process groups of their own and so never see the terminal's Ctrl-C).
fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_interrupt as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_interrupt as *const () as libc::sighandler_t);
    }
}

async fn interrupted() {
    while !INTERRUPTED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Arguments {
    command: String,
    positional: Vec<String>,
    machines: Option<PathBuf>,
    name: Option<String>,
    timeout: Duration,
}

fn parse_arguments() -> Result<Arguments, String> {
    let mut arguments = std::env::args().skip(1);
    let command = arguments.next().ok_or("no command given")?;
    let mut parsed = Arguments {
        command,
        positional: Vec::new(),
        machines: None,
        name: None,
        timeout: Duration::from_secs(1800),
    };
    while let Some(argument) = arguments.next() {
        let mut value = |flag: &str| arguments.next().ok_or(format!("{flag} needs a value"));
        match argument.as_str() {
            "--machines" => parsed.machines = Some(PathBuf::from(value("--machines")?)),
            "--name" => parsed.name = Some(value("--name")?),
            "--timeout" => {
                let text = value("--timeout")?;
                let seconds = text
                    .parse()
                    .map_err(|_| format!("--timeout {text:?} is not a number of seconds"))?;
                parsed.timeout = Duration::from_secs(seconds);
            }
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            _ => parsed.positional.push(argument),
        }
    }
    Ok(parsed)
}

/// Registers the definitions of `--machines DIR` over the template's machines, when given.
async fn register_other_machines(stack: &mut LocalStack, arguments: &Arguments) -> Result<(), StackError> {
    if let Some(dir) = &arguments.machines {
        for (name, arn) in stack.register_state_machines(dir).await? {
            eprintln!("local-stack: state machine {name} from {}: {arn}", dir.display());
        }
    }
    Ok(())
}

async fn up(arguments: &Arguments) -> Result<(), StackError> {
    let mut stack = LocalStack::start(Options::default()).await?;
    register_other_machines(&mut stack, arguments).await?;
    for (name, arn) in stack.machines() {
        println!("state machine {name}: {arn}");
    }
    println!("\nmoto:           {}", stack.endpoint());
    println!("Lambda service: {}", stack.lambda_endpoint());
    println!("run directory: {}", stack.run_dir().display());
    println!("functions:     {}", stack.functions().join(" "));
    println!("\n# for the AWS CLI:\n{}", stack.shell_exports());
    println!("# each function's environment, as the template set it:");
    for function in &stack.deployed().functions {
        println!("#   {}", function.name);
        for (name, value) in &function.environment {
            println!("#     {name}={value}");
        }
    }
    println!("\nlocal-stack is up; Ctrl-C stops it.");
    interrupted().await;
    stack.stop();
    Ok(())
}

/// Starts the run with `hhvmctl` as an operator would — today's nightly through
/// `hhvm-start-nightly` (`nightly --force`: what the schedule starts, even if a nightly of
/// today exists), a VERSION with `release` — and follows it to its end, its progress on
/// stderr. Returns hhvmctl's final view (`--json`, also kept as `hhvmctl-view.json` in the run
/// directory) when the run succeeded; `None` when it did not.
async fn follow_with_hhvmctl(
    stack: &LocalStack,
    version: Option<&str>,
    timeout: Duration,
) -> Result<Option<Value>, StackError> {
    let mut args: Vec<&str> = match version {
        None => vec!["nightly", "--force"],
        Some(version) => vec!["release", version, "--no-approval"],
    };
    // One-second polls, as many as the machines accept: a loaded machine's builds and publish
    // take minutes.
    let poll_limit = MAX_POLL_LIMIT.to_string();
    args.extend([
        "--poll-interval",
        "1",
        "--poll-limit",
        &poll_limit,
        "--interval",
        "1",
        "--json",
    ]);
    eprintln!("local-stack: hhvmctl {}", args.join(" "));
    let view_file = stack.run_dir().join("hhvmctl-view.json");
    let stdout = std::fs::File::create(&view_file)
        .map_err(|error| StackError(format!("create {}: {error}", view_file.display())))?;
    let mut child = std::process::Command::new(workspace_binary("hhvmctl"))
        .args(&args)
        .envs(stack.client_environment())
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .spawn()
        .map_err(|error| StackError(format!("run target/debug/hhvmctl: {error}")))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|error| StackError(format!("wait for hhvmctl: {error}")))?
        {
            break status;
        }
        if INTERRUPTED.load(Ordering::SeqCst) || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StackError::new(if INTERRUPTED.load(Ordering::SeqCst) {
                "interrupted"
            } else {
                "the run outlived --timeout"
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = std::fs::read_to_string(&view_file).unwrap_or_default();
    let view: Value = serde_json::from_str(&text)
        .map_err(|error| StackError(format!("hhvmctl ({status}) printed no view: {error}: {text}")))?;
    Ok(status.success().then_some(view))
}

/// Runs one execution of `machine` on a started stack, with progress on stderr and every event
/// in `history.jsonl`; prints the outcome and each worker's end.
async fn execute(
    stack: &LocalStack,
    machine: &str,
    name: &str,
    input: &Value,
    timeout: Duration,
) -> Result<ExecutionOutcome, StackError> {
    let execution = stack.start_execution(machine, name, input).await?;
    let history = stack.run_dir().join("history.jsonl");
    eprintln!(
        "local-stack: started {execution}\nlocal-stack: every history event in full: {}",
        history.display()
    );
    let mut progress = Progress::new(&history, true)?;
    let outcome = tokio::select! {
        outcome = stack.follow_execution(&execution, timeout, &mut progress) => outcome?,
        _ = interrupted() => return Err(StackError::new("interrupted")),
    };
    println!("{}: {}", outcome.status, outcome.arn);
    if let Some(output) = &outcome.output {
        println!("{}", serde_json::to_string_pretty(output).unwrap_or_default());
    }
    if let Some(error) = &outcome.error {
        println!("error: {error}: {}", outcome.cause.as_deref().unwrap_or(""));
    }
    for run in stack.worker_runs() {
        println!(
            "worker {} ({}{}): exit {:?}, log {}",
            run.instance,
            run.job,
            run.distro.as_deref().map(|d| format!(" {d}")).unwrap_or_default(),
            run.exit_code,
            run.sandbox.join("worker.log").display()
        );
    }
    Ok(outcome)
}

async fn run(arguments: &Arguments) -> Result<bool, StackError> {
    let [machine, input] = arguments.positional.as_slice() else {
        return Err(StackError(format!("run takes MACHINE and 'JSON INPUT'\n{USAGE}")));
    };
    let input: Value = serde_json::from_str(input).map_err(|e| StackError(format!("the input is not JSON: {e}")))?;
    let mut stack = LocalStack::start(Options::default()).await?;
    register_other_machines(&mut stack, arguments).await?;
    let name = arguments
        .name
        .clone()
        .unwrap_or_else(|| format!("local-{}", std::process::id()));
    let outcome = execute(&stack, machine, &name, &input, arguments.timeout).await;
    stack.stop();
    Ok(outcome?.succeeded())
}

/// The README's main job: build and publish a version on the local stack, show what was
/// published, and prove with apt-get that the repository works.
async fn pipeline(arguments: &Arguments) -> Result<bool, StackError> {
    let version = match arguments.positional.as_slice() {
        [] => None,
        [version] => Some(version.clone()),
        _ => return Err(StackError(format!("pipeline takes at most a VERSION\n{USAGE}"))),
    };
    let mut stack = LocalStack::start(Options::default()).await?;
    let result = publish_and_check(&mut stack, arguments, version).await;
    stack.stop();
    result
}

async fn publish_and_check(
    stack: &mut LocalStack,
    arguments: &Arguments,
    version: Option<String>,
) -> Result<bool, StackError> {
    register_other_machines(stack, arguments).await?;
    let started = Instant::now();
    let Some(view) = follow_with_hhvmctl(stack, version.as_deref(), arguments.timeout).await? else {
        return Ok(false);
    };
    let pipeline_time = started.elapsed();
    eprintln!(
        "\nlocal-stack: the pipeline took {:.1} s (from hhvmctl's start to the run's end)",
        pipeline_time.as_secs_f64()
    );
    let built = view["versions"][0]
        .as_str()
        .ok_or_else(|| StackError(format!("hhvmctl's view names no version: {view}")))?
        .to_string();
    let nightly = built.parse::<Version>().is_ok_and(|version| version.is_nightly());
    let publication = inspect_publication(stack, &built).await?;
    println!("\n{publication}");
    let mut problems = Vec::new();
    if publication.source_tarball().is_none() {
        problems.push("no source tarball under source/".to_string());
    }
    if publication.pool_packages.is_empty() {
        problems.push("no package of this version in the pools".to_string());
    }
    if publication.index_pages.is_empty() {
        problems.push("no index pages".to_string());
    }
    if publication.invalidations.is_empty() {
        problems.push("no CloudFront invalidation".to_string());
    }
    let package = if nightly { "hhvm-nightly" } else { "hhvm" };
    for distro in PUBLISHED_DISTROS {
        let Some((repository, suite)) = repository_and_suite(distro) else {
            continue;
        };
        match apt_download(stack, repository, suite, package).await {
            Ok(download) => println!(
                "apt-get download {package} from {repository} {suite}: signature verified, got {}\n  {}",
                download.deb.display(),
                download.fields.trim_end().replace('\n', "\n  ")
            ),
            Err(error) => problems.push(format!("apt-get from {repository} {suite}: {error}")),
        }
    }
    eprintln!(
        "local-stack: pipeline wall time {:.1} s; logs and history in {}",
        pipeline_time.as_secs_f64(),
        stack.run_dir().display()
    );
    if problems.is_empty() {
        println!("\nthe published repository works: {built} is installable with apt");
        Ok(true)
    } else {
        for problem in &problems {
            eprintln!("local-stack: problem: {problem}");
        }
        Ok(false)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let arguments = match parse_arguments() {
        Ok(arguments) => arguments,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("local-stack: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    catch_interrupts();
    let result = match arguments.command.as_str() {
        "up" => up(&arguments).await.map(|()| true),
        "run" => run(&arguments).await,
        "pipeline" => pipeline(&arguments).await,
        other => {
            eprintln!("local-stack: unknown command {other}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("local-stack: {error}");
            ExitCode::FAILURE
        }
    }
}
