//! `local-stack`: the pipeline on 127.0.0.1 (docs/local-stack.md).
//!
//! usage:
//!   local-stack up [--machines DIR]
//!       start everything, register the state machines of DIR (default `state-machines`, when
//!       it exists), print the endpoints and environment, and wait for Ctrl-C
//!   local-stack run MACHINE 'JSON INPUT' [--name NAME] [--machines DIR] [--timeout SECONDS]
//!       start everything, run one execution of MACHINE with progress, print the outcome, stop

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pipeline_tests::{LocalStack, Options, StackError, describe_event};
use serde_json::Value;

const USAGE: &str = "usage:
  local-stack up [--machines DIR]
  local-stack run MACHINE 'JSON INPUT' [--name NAME] [--machines DIR] [--timeout SECONDS]";

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

fn machines_dir(arguments: &Arguments) -> Option<PathBuf> {
    if let Some(dir) = &arguments.machines {
        return Some(dir.clone());
    }
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../state-machines");
    default.is_dir().then_some(default)
}

async fn up(arguments: &Arguments) -> Result<(), StackError> {
    let mut stack = LocalStack::start(Options::default()).await?;
    if let Some(dir) = machines_dir(arguments) {
        for (name, arn) in stack.register_state_machines(&dir).await? {
            println!("state machine {name}: {arn}");
        }
    }
    println!("\nmoto:          {}", stack.endpoint());
    println!("Lambda router: {}", stack.lambda_endpoint());
    println!("run directory: {}", stack.run_dir().display());
    println!("functions:     {}", stack.functions().join(" "));
    println!("\n# for the AWS CLI:\n{}", stack.shell_exports());
    println!("# the environment of every Lambda:");
    for (name, value) in stack.lambda_environment_variables() {
        println!("#   {name}={value}");
    }
    println!("\nlocal-stack is up; Ctrl-C stops it.");
    interrupted().await;
    stack.stop();
    Ok(())
}

async fn run(arguments: &Arguments) -> Result<bool, StackError> {
    let [machine, input] = arguments.positional.as_slice() else {
        return Err(StackError(format!("run takes MACHINE and 'JSON INPUT'\n{USAGE}")));
    };
    let input: Value = serde_json::from_str(input).map_err(|e| StackError(format!("the input is not JSON: {e}")))?;
    let dir =
        machines_dir(arguments).ok_or_else(|| StackError::new("no state machine directory: pass --machines DIR"))?;
    let mut stack = LocalStack::start(Options::default()).await?;
    stack.register_state_machines(&dir).await?;
    let name = arguments
        .name
        .clone()
        .unwrap_or_else(|| format!("local-{}", std::process::id()));
    let execution = stack.start_execution(machine, &name, &input).await?;
    eprintln!("local-stack: started {execution}");
    let outcome = tokio::select! {
        outcome = stack.wait_for_execution(&execution, arguments.timeout, |event| eprintln!("  {}", describe_event(event))) => outcome?,
        _ = interrupted() => {
            stack.stop();
            return Err(StackError::new("interrupted"));
        }
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
    stack.stop();
    Ok(outcome.succeeded())
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
