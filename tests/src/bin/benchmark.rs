//! `benchmark`: measures what the pipeline costs and writes `docs/benchmarks.md` (run it with
//! `bin/benchmark`, which installs what it needs first). Not a test: it passes or fails
//! nothing but its own steps, and states each figure beside its target.
//!
//! usage: benchmark [--output FILE] [--runs N]
//!
//! 1. the functions' release binaries (x86_64, this machine's architecture), built;
//! 2. each function's cold start (process start to its first answer through the Lambda Runtime
//!    API, as the local stack's Lambda service serves it; median of N, default 10) and peak
//!    resident memory;
//! 3. each function's arm64 package (`cargo lambda build --release --arm64 --output-format zip`);
//! 4. the index renderer on 1,000,000 keys (`cargo bench --bench index_pages`);
//! 5. the index update after a nightly on a bucket of 1,000,000 keys, against a whole re-index
//!    (`cargo bench --bench index_update`);
//! 6. a local nightly, end to end (`bin/run-local`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pipeline_tests::lambda_service::ColdStart;
use pipeline_tests::{LocalStack, Options, StackError, arm64_package_build, release_build, workspace_root};
use serde_json::{Value, json};

const USAGE: &str = "usage: benchmark [--output FILE] [--runs N]";

/// The targets the figures are held to.
const COLD_START_TARGET_MS: f64 = 10.0;
const RSS_TARGET_MIB: f64 = 16.0;
const ZIP_TARGET_BYTES: u64 = 5_000_000;
const RENDER_TARGET_SECONDS: f64 = 2.0;
const RENDER_TARGET_MIB: f64 = 300.0;
const UPDATE_TARGET_PERCENT: f64 = 1.0;

/// An event every function refuses before it sends any request (it is not a JSON object):
/// the cold start times the runtime, the configuration, the SDK clients and the validation,
/// never an emulator's answer.
const COLD_START_EVENT: &str = "benchmark";

struct Arguments {
    output: PathBuf,
    runs: usize,
}

fn parse_arguments(mut arguments: impl Iterator<Item = String>) -> Result<Arguments, String> {
    let mut parsed = Arguments {
        output: workspace_root().join("docs/benchmarks.md"),
        runs: 10,
    };
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().ok_or(format!("{argument} needs a value\n{USAGE}"));
        match argument.as_str() {
            "--output" => parsed.output = PathBuf::from(value()?),
            "--runs" => {
                parsed.runs = value()?
                    .parse()
                    .ok()
                    .filter(|runs| *runs > 0)
                    .ok_or(format!("--runs takes a positive whole number\n{USAGE}"))?
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(parsed)
}

/// Where the steps' logs go.
fn log_dir() -> PathBuf {
    workspace_root().join("target/benchmark")
}

/// One step's progress line on stderr.
fn say(started: Instant, line: &str) {
    eprintln!("benchmark [{:>5.0} s] {line}", started.elapsed().as_secs_f64());
}

/// `PATH` with the project's tools (`.venv/bin`: cargo-lambda, zig, moto) first.
fn tool_path() -> String {
    format!(
        "{}:{}",
        workspace_root().join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
    )
}

/// Runs `program arguments` in the workspace, its output to `log`; returns the wall time and
/// what it printed on stdout.
fn run_logged(program: &str, arguments: &[&str], log: &Path) -> Result<(Duration, String), StackError> {
    let stderr = std::fs::File::create(log).map_err(|e| StackError(format!("create {}: {e}", log.display())))?;
    let started = Instant::now();
    let output = Command::new(program)
        .args(arguments)
        .current_dir(workspace_root())
        .env("PATH", tool_path())
        .stdin(Stdio::null())
        .stderr(stderr)
        .output()
        .map_err(|e| StackError(format!("run {program}: {e}")))?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .and_then(|mut file| std::io::Write::write_all(&mut file, stdout.as_bytes()))
        .map_err(|e| StackError(format!("write {}: {e}", log.display())))?;
    if !output.status.success() {
        return Err(StackError(format!(
            "{program} {} failed ({}); see {}",
            arguments.join(" "),
            output.status,
            log.display()
        )));
    }
    Ok((elapsed, stdout))
}

/// The JSON of a bench's `RESULT {json}` line.
fn bench_result(stdout: &str) -> Result<Value, StackError> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("RESULT "))
        .ok_or_else(|| StackError("the bench printed no RESULT line".into()))?;
    serde_json::from_str(line).map_err(|e| StackError(format!("the bench's RESULT line is not JSON: {e}")))
}

/// What the machine is, for the report's reader.
fn machine_description() -> Vec<(String, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')))
        .map_or("unknown".to_string(), |(_, name)| name.trim().to_string());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("unknown".to_string(), |kib| format!("{:.1} GiB", kib / 1_048_576.0));
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    let command_line = |program: &str, arguments: &[&str]| {
        Command::new(program)
            .args(arguments)
            .current_dir(workspace_root())
            .output()
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let dirty = !command_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let commit = command_line("git", &["rev-parse", "--short=12", "HEAD"]);
    vec![
        ("CPU".into(), format!("{cpu}, {cores} cores available")),
        ("Memory".into(), memory),
        ("Kernel".into(), read("/proc/sys/kernel/osrelease").trim().to_string()),
        ("Rust".into(), command_line("rustc", &["--version"])),
        (
            "Commit".into(),
            format!("{commit}{}", if dirty { " (with uncommitted changes)" } else { "" }),
        ),
        (
            "Date".into(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        ),
    ]
}

/// One function's measured figures.
struct FunctionFigures {
    name: String,
    cold_starts: Vec<ColdStart>,
    zip_bytes: Option<u64>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

impl FunctionFigures {
    fn median_first_response_ms(&self) -> f64 {
        median(
            self.cold_starts
                .iter()
                .map(|c| milliseconds(c.first_response))
                .collect(),
        )
    }
    fn median_init_ms(&self) -> f64 {
        median(self.cold_starts.iter().map(|c| milliseconds(c.init)).collect())
    }
    fn range_ms(&self) -> (f64, f64) {
        let all: Vec<f64> = self
            .cold_starts
            .iter()
            .map(|c| milliseconds(c.first_response))
            .collect();
        (
            all.iter().copied().fold(f64::INFINITY, f64::min),
            all.iter().copied().fold(0.0, f64::max),
        )
    }
    fn peak_rss_mib(&self) -> Option<f64> {
        self.cold_starts
            .iter()
            .filter_map(|c| c.peak_rss_kib)
            .max()
            .map(|kib| kib as f64 / 1024.0)
    }
}

/// Starts the local stack on the release binaries and measures `runs` cold starts of each
/// function.
async fn measure_cold_starts(runs: usize, started: Instant) -> Result<Vec<FunctionFigures>, StackError> {
    let options = Options {
        run_dir: Some(log_dir().join("local-stack")),
        verbose: false,
        build: false,
        release: true,
        ..Options::default()
    };
    let _ = std::fs::remove_dir_all(log_dir().join("local-stack"));
    let mut stack = LocalStack::start(options).await?;
    let service = stack
        .lambda_service()
        .ok_or_else(|| StackError("the stack has no Lambda service".into()))?;
    let mut figures = Vec::new();
    for name in stack.functions() {
        service.process_per_invocation(&name);
        // The first answer is the process the service started ahead of any event (no cold
        // start is measured on it); each answer after that comes from a new process.
        for _ in 0..=runs {
            // Time for the replaced process to end, so it does not share the CPU with the next.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let answer = stack.invoke(&name, &json!(COLD_START_EVENT)).await?;
            if answer.function_error.is_none() || answer.payload["errorType"] != "InvalidInput" {
                return Err(StackError(format!(
                    "{name} answered {} to the refused event {COLD_START_EVENT:?}, not InvalidInput",
                    answer.payload
                )));
            }
        }
        let cold_starts = service.cold_starts(&name);
        if cold_starts.len() != runs {
            return Err(StackError(format!(
                "{name}: {} cold starts measured of {runs}",
                cold_starts.len()
            )));
        }
        let function = FunctionFigures {
            name,
            cold_starts,
            zip_bytes: None,
        };
        say(
            started,
            &format!(
                "{}: cold start {:.1} ms (median of {runs}), peak RSS {:.1} MiB",
                function.name,
                function.median_first_response_ms(),
                function.peak_rss_mib().unwrap_or(f64::NAN)
            ),
        );
        figures.push(function);
    }
    stack.stop();
    Ok(figures)
}

/// The size of each function's arm64 package, `target/lambda/<function>/bootstrap.zip`.
fn read_zip_sizes(functions: &mut [FunctionFigures]) {
    for function in functions {
        let zip = workspace_root()
            .join("target/lambda")
            .join(&function.name)
            .join("bootstrap.zip");
        function.zip_bytes = std::fs::metadata(zip).ok().map(|metadata| metadata.len());
    }
}

/// The measured figures, for the report.
struct Report {
    machine: Vec<(String, String)>,
    runs: usize,
    release_build: Duration,
    arm64_build: Duration,
    functions: Vec<FunctionFigures>,
    render: Value,
    update: Value,
    nightly: Duration,
}

fn verdict(within: bool) -> &'static str {
    if within { "within" } else { "**over**" }
}

fn mib(bytes: f64) -> f64 {
    bytes / 1_048_576.0
}

/// `docs/benchmarks.md`.
fn render_report(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `bin/benchmark` (not part of the tests: it measures, it does not pass or fail). \
         Every figure below is from the run described here; run it again to refresh the file.\n"
    );
    let _ = writeln!(out, "## Machine\n");
    for (name, value) in &report.machine {
        let _ = writeln!(out, "- {name}: {value}");
    }
    let _ = writeln!(
        out,
        "- Builds: the functions' x86_64 release binaries in {:.0} s, their arm64 packages in {:.0} s \
         (both from what `target/` already held).\n",
        report.release_build.as_secs_f64(),
        report.arm64_build.as_secs_f64()
    );

    let _ = writeln!(out, "## Functions\n");
    let _ = writeln!(
        out,
        "Cold start: from the process's start to its first answer through the Lambda Runtime API \
         (Lambda's init duration and the first invocation together), served by the local stack's \
         Lambda service with the environment the template gives each function; the event is one \
         every function refuses before sending any request, so no emulator time is counted. \
         Release build for x86_64 (this machine), median of {} cold starts; the range is the \
         fastest and slowest. Peak RSS: the process's `VmHWM` at its first answer, the largest of \
         the runs. Package: the arm64 `bootstrap.zip` that is deployed. Targets: cold start \
         ≤ {COLD_START_TARGET_MS} ms, RSS ≤ {RSS_TARGET_MIB} MiB, package ≤ 5 MB.\n",
        report.runs
    );
    let _ = writeln!(
        out,
        "| Function | Cold start, median (ms) | Range (ms) | Init, median (ms) | Peak RSS (MiB) | arm64 zip (MB) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let (mut slow, mut large, mut heavy) = (0, 0, 0);
    for function in &report.functions {
        let cold = function.median_first_response_ms();
        let (fastest, slowest) = function.range_ms();
        let rss = function.peak_rss_mib();
        slow += usize::from(cold > COLD_START_TARGET_MS);
        heavy += usize::from(rss.is_none_or(|rss| rss > RSS_TARGET_MIB));
        large += usize::from(function.zip_bytes.is_none_or(|bytes| bytes > ZIP_TARGET_BYTES));
        let _ = writeln!(
            out,
            "| `{}` | {cold:.1} | {fastest:.1}–{slowest:.1} | {:.1} | {} | {} |",
            function.name,
            function.median_init_ms(),
            rss.map_or("n/a".to_string(), |rss| format!("{rss:.1}")),
            function
                .zip_bytes
                .map_or("n/a".to_string(), |bytes| format!("{:.2}", bytes as f64 / 1_000_000.0)),
        );
    }
    let count = report.functions.len();
    let _ = writeln!(
        out,
        "\nOf {count} functions: cold start {} target for {}, RSS {} for {}, package {} for {}.\n",
        verdict(slow == 0),
        if slow == 0 {
            "all".to_string()
        } else {
            format!("all but {slow}")
        },
        verdict(heavy == 0),
        if heavy == 0 {
            "all".to_string()
        } else {
            format!("all but {heavy}")
        },
        verdict(large == 0),
        if large == 0 {
            "all".to_string()
        } else {
            format!("all but {large}")
        },
    );

    let render = &report.render;
    let seconds = render["seconds"].as_f64().unwrap_or(f64::NAN);
    let peak = render["peakRssMib"].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(out, "## Index pages: rendering 1,000,000 keys\n");
    let _ = writeln!(
        out,
        "`cargo bench -p create-s3-index-html --bench index_pages`: the walk of {} sorted keys, each \
         finished directory's page rendered and its MD5 taken (what is compared with the listed \
         ETag), without S3.\n",
        render["keys"]
    );
    let _ = writeln!(out, "| Pages | HTML (MiB) | Wall time (s) | Peak RSS (MiB) |");
    let _ = writeln!(out, "|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {:.1} | {seconds:.2} | {peak:.1} |\n",
        render["pages"],
        mib(render["htmlBytes"].as_f64().unwrap_or(f64::NAN))
    );
    let _ = writeln!(
        out,
        "Target ≤ {RENDER_TARGET_SECONDS} s and ≤ {RENDER_TARGET_MIB} MiB: time {}, memory {}.\n",
        verdict(seconds <= RENDER_TARGET_SECONDS),
        verdict(peak <= RENDER_TARGET_MIB)
    );

    let update = &report.update;
    let _ = writeln!(out, "## Index update after a nightly on 1,000,000 keys\n");
    let _ = writeln!(
        out,
        "`cargo bench -p create-s3-index-html --bench index_update`: the function's handler on a \
         download bucket of {} keys laid out as the real one (two repositories with 450 releases \
         and two years of nightlies for four suites, by-hash indexes, the source tarballs, and an \
         archive of older downloads for the rest), held by an in-memory S3 (aws-smithy-mocks \
         rules: no emulator lists a million keys fast enough). A nightly's {} keys are added, \
         then the publish's update runs (`version`); the whole-bucket re-index runs on a copy of \
         the same bucket, and a whole-bucket check after the update must write nothing. Wall \
         times are the function's own work with no network; on S3 each request adds its round \
         trip, so the request counts are the cost.\n",
        update["keys"], update["nightlyKeys"]
    );
    let _ = writeln!(
        out,
        "| Run | ListObjectsV2 | GetObject | PutObject | All requests | Objects listed | Wall time (s) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (label, run) in [
        ("first whole-bucket index", &update["firstIndex"]),
        ("update after the nightly", &update["update"]),
        ("whole-bucket re-index after the nightly", &update["reindex"]),
        ("whole-bucket check after the update", &update["check"]),
    ] {
        let count = |kind: &str| run["requests"][kind].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {:.2} |",
            count("ListObjectsV2"),
            count("GetObject"),
            count("PutObject"),
            run["total"],
            run["objectsListed"],
            run["seconds"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let percent = update["percentOfReindex"].as_f64().unwrap_or(f64::NAN);
    let listings = update["percentOfReindexListings"].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "\nThe update made {percent:.2} % of the requests of a whole re-index ({listings:.2} % of its \
         listings), with 0 reads of a page: target ≤ {UPDATE_TARGET_PERCENT} % {}. Both write the \
         same changed pages; the update's listings are those of the directories the nightly \
         wrote under (each repository's nightly pool holds every kept nightly, so it is listed in \
         full) and of their ancestors' levels.\n",
        verdict(percent <= UPDATE_TARGET_PERCENT)
    );

    let _ = writeln!(out, "## A local nightly\n");
    let _ = writeln!(
        out,
        "`bin/run-local`, end to end (tools checked, debug build up to date, the stack started, \
         the nightly built and published with workers running the real scripts, apt-get \
         installing the result, everything stopped): {:.0} s.",
        report.nightly.as_secs_f64()
    );
    out
}

async fn benchmark(arguments: &Arguments) -> Result<(), StackError> {
    let started = Instant::now();
    let logs = log_dir();
    std::fs::create_dir_all(&logs).map_err(|e| StackError(format!("create {}: {e}", logs.display())))?;
    say(started, &format!("logs in {}", logs.display()));

    // Every build first, so that nothing compiles while something is timed.
    say(started, "building the functions' release binaries (release-build.log)");
    let (release_build, _) = run_logged("cargo", &release_build(), &logs.join("release-build.log"))?;
    say(started, "building the arm64 packages (arm64-build.log)");
    let (arm64_build, _) = run_logged("cargo", &arm64_package_build(), &logs.join("arm64-build.log"))?;
    let bench = ["bench", "-p", "create-s3-index-html", "--bench"];
    say(started, "building the index benches (bench-build.log)");
    let benches = [&bench[..], &["index_pages", "--bench", "index_update", "--no-run"]].concat();
    run_logged("cargo", &benches, &logs.join("bench-build.log"))?;
    say(started, "building the local run's binaries (debug-build.log)");
    run_logged(
        "cargo",
        &["build", "--workspace", "--bins"],
        &logs.join("debug-build.log"),
    )?;

    say(
        started,
        &format!("measuring {} cold starts of each function", arguments.runs),
    );
    let mut functions = measure_cold_starts(arguments.runs, started).await?;
    read_zip_sizes(&mut functions);

    say(started, "rendering the pages of 1,000,000 keys (index-pages.log)");
    let (_, stdout) = run_logged(
        "cargo",
        &[&bench[..], &["index_pages"]].concat(),
        &logs.join("index-pages.log"),
    )?;
    let render = bench_result(&stdout)?;

    say(
        started,
        "updating the index of 1,000,000 keys after a nightly (index-update.log)",
    );
    let (_, stdout) = run_logged(
        "cargo",
        &[&bench[..], &["index_update"]].concat(),
        &logs.join("index-update.log"),
    )?;
    let update = bench_result(&stdout)?;

    say(started, "running a local nightly with bin/run-local (run-local.log)");
    let (nightly, _) = run_logged("bin/run-local", &[], &logs.join("run-local.log"))?;

    let report = Report {
        machine: machine_description(),
        runs: arguments.runs,
        release_build,
        arm64_build,
        functions,
        render,
        update,
        nightly,
    };
    std::fs::write(&arguments.output, render_report(&report))
        .map_err(|e| StackError(format!("write {}: {e}", arguments.output.display())))?;
    say(started, &format!("wrote {}", arguments.output.display()));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let arguments = match parse_arguments(std::env::args().skip(1)) {
        Ok(arguments) => arguments,
        Err(problem) => {
            eprintln!("{problem}");
            return ExitCode::from(2);
        }
    };
    match benchmark(&arguments).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(StackError(problem)) => {
            eprintln!("benchmark: {problem}");
            ExitCode::FAILURE
        }
    }
}
