//! The AWS CLI as the scripts of the tests run it (`pipeline_testing::aws_cli`: `aws` first on
//! their PATH, a fork of a server that imported the CLI) behaves as `.venv/bin/aws` does: the
//! same output, files and exit status for the same command, environment, working directory,
//! umask and input; a signal to it ends the run; without the server it is `.venv/bin/aws`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pipeline_testing::aws_cli::AwsCliServer;
use pipeline_testing::{MotoServer, unique_name};
use pipeline_tests::workspace_root;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cli {
    /// `.venv/bin/aws`, started as a process of its own.
    Real,
    /// `tests/aws-cli/bin/aws` with the shared server.
    Served,
}

/// The checks' own moto: the hostile corpus (`hostile_inputs::`) watches every bucket of the
/// shared one for changes while it runs.
fn moto() -> &'static MotoServer {
    static SERVER: OnceLock<MotoServer> = OnceLock::new();
    SERVER.get_or_init(|| MotoServer::start_plain("aws-cli-checks").unwrap_or_else(|e| panic!("{e}")))
}

/// `aws ARGS` as a script runs it: a clean environment with moto's endpoint and `extra`, in
/// `dir`, under umask 077 (set by the shell that starts it, as a script's `umask` would be).
fn command(cli: Cli, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg("umask 077 && exec aws \"$@\"")
        .arg("aws")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("LANG", "C.UTF-8")
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .envs(extra.iter().copied());
    let path = format!("{}:/usr/bin:/bin", workspace_root().join(".venv/bin").display());
    match cli {
        Cli::Real => {
            command.env("PATH", path);
        }
        Cli::Served => AwsCliServer::shared().configure(&mut command, &path),
    }
    command
}

fn run(cli: Cli, dir: &Path, args: &[&str], stdin: &str, extra: &[(&str, &str)]) -> Output {
    let mut child = command(cli, dir, args, extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bash");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under the temporary directory for one CLI's runs.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Both CLIs run `args` (`{bucket}` replaced by each one's own bucket); their outputs must be the
/// same apart from the bucket's name. Returns the served CLI's output.
fn same_for_both(buckets: &[(Cli, String, PathBuf)], args: &[&str], stdin: &str, extra: &[(&str, &str)]) -> Output {
    let outputs: Vec<(Output, &String)> = buckets
        .iter()
        .map(|(cli, bucket, dir)| {
            let args: Vec<String> = args.iter().map(|arg| arg.replace("{bucket}", bucket)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            (run(*cli, dir, &args, stdin, extra), bucket)
        })
        .collect();
    let normalized = |(output, bucket): &(Output, &String)| {
        (
            output.status.code(),
            text(&output.stdout).replace(bucket.as_str(), "{bucket}"),
            text(&output.stderr).replace(bucket.as_str(), "{bucket}"),
        )
    };
    assert_eq!(normalized(&outputs[0]), normalized(&outputs[1]), "aws {args:?}");
    outputs.into_iter().nth(1).unwrap().0
}

#[test]
fn the_served_cli_answers_as_the_real_one() {
    let clis: Vec<(Cli, String, PathBuf)> = [Cli::Real, Cli::Served]
        .into_iter()
        .map(|cli| (cli, unique_name("cli"), scratch_dir("aws-cli")))
        .collect();
    let made = same_for_both(&clis, &["s3", "mb", "s3://{bucket}"], "", &[]);
    assert_eq!(
        text(&made.stdout),
        "make_bucket: {bucket}\n".replace("{bucket}", &clis[1].1)
    );

    // Standard input, output and the working directory are the script's.
    same_for_both(
        &clis,
        &["s3", "cp", "--only-show-errors", "-", "s3://{bucket}/piped.txt"],
        "from standard input\n",
        &[],
    );
    let read = same_for_both(&clis, &["s3", "cp", "s3://{bucket}/piped.txt", "-"], "", &[]);
    assert_eq!(text(&read.stdout), "from standard input\n");
    same_for_both(
        &clis,
        &[
            "s3",
            "cp",
            "--only-show-errors",
            "s3://{bucket}/piped.txt",
            "downloaded.txt",
        ],
        "",
        &[],
    );
    for (cli, _, dir) in &clis {
        let file = dir.join("downloaded.txt");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "from standard input\n",
            "{cli:?}"
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{cli:?}: the file is created under the script's umask");
    }

    // The environment is the script's: AWS_DEFAULT_OUTPUT picks the format.
    let listed = same_for_both(
        &clis,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            "{bucket}",
            "--query",
            "Contents[].Key",
        ],
        "",
        &[("AWS_DEFAULT_OUTPUT", "text")],
    );
    assert_eq!(text(&listed.stdout), "piped.txt\n");

    // Errors: a service error and a usage error, each with the CLI's own status and message.
    let missing = same_for_both(
        &clis,
        &["s3api", "head-object", "--bucket", "{bucket}", "--key", "missing"],
        "",
        &[],
    );
    assert_eq!(missing.status.code(), Some(255));
    assert!(text(&missing.stderr).contains("Not Found"), "{}", text(&missing.stderr));
    let usage = same_for_both(&clis, &["s3", "no-such-command"], "", &[]);
    assert!(!usage.status.success(), "{}", text(&usage.stderr));
}

/// Starts `aws s3 cp - s3://BUCKET/KEY` reading from a pipe this test holds open.
fn upload_waiting_for_input(dir: &Path, bucket: &str, key: &str) -> Child {
    let mut child = command(
        Cli::Served,
        dir,
        &["s3", "cp", "--only-show-errors", "-", &format!("s3://{bucket}/{key}")],
        &[],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    child.stdin.as_mut().unwrap().write_all(b"the first part\n").unwrap();
    child
}

fn object_exists(dir: &Path, bucket: &str, key: &str) -> bool {
    run(
        Cli::Real,
        dir,
        &["s3api", "head-object", "--bucket", bucket, "--key", key],
        "",
        &[],
    )
    .status
    .success()
}

#[test]
fn a_signal_to_the_served_cli_ends_its_run() {
    let dir = scratch_dir("aws-cli-signal");
    let bucket = unique_name("cli-signal");
    assert!(
        run(Cli::Served, &dir, &["s3", "mb", &format!("s3://{bucket}")], "", &[])
            .status
            .success()
    );
    for (signal, key) in [(libc::SIGTERM, "terminated"), (libc::SIGKILL, "killed")] {
        let mut upload = upload_waiting_for_input(&dir, &bucket, key);
        // Held here: `wait` would close it, and end the upload as if the input were complete.
        let mut input = upload.stdin.take().unwrap();
        // Until the CLI runs, the signal would only end the shell in front of it.
        std::thread::sleep(Duration::from_secs(2));
        signal_process(&upload, signal);
        let status = upload.wait().unwrap();
        assert_eq!(status.signal(), Some(signal), "{key}: {status}");
        // Were the run still going, the rest of its input would complete the upload.
        let _ = input.write_all(b"the rest\n");
        drop(input);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            assert!(
                !object_exists(&dir, &bucket, key),
                "{key}: the run went on after its client ended"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Sends `signal` to the process `child` runs (bash exec'd into `aws`), and to nothing else.
fn signal_process(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) of one process this test started.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill {}", child.id());
}

#[test]
fn without_the_server_the_cli_is_the_real_one() {
    let dir = scratch_dir("aws-cli-fallback");
    let mut served = command(Cli::Served, &dir, &["--version"], &[]);
    served.env_remove(pipeline_testing::aws_cli::SOCKET_VARIABLE);
    let served = served.output().unwrap();
    let real = command(Cli::Real, &dir, &["--version"], &[]).output().unwrap();
    assert!(real.status.success(), "{}", text(&real.stderr));
    assert_eq!(
        (served.status.code(), text(&served.stdout), text(&served.stderr)),
        (real.status.code(), text(&real.stdout), text(&real.stderr))
    );
    assert!(text(&real.stdout).starts_with("aws-cli/"), "{}", text(&real.stdout));
}
