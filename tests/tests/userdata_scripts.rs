//! The worker user-data scripts, run with bash against stub tools: a fake `aws` over a
//! directory standing for S3, and recorders for `git`, `gpg`, `docker`, `shutdown`,
//! `systemctl`, `apt-get`, `curl`, `ssh` (tests/fixtures/stubs). Each test checks what the
//! script left in the fake S3, in its systemd unit directory, and the order of its recorded
//! effects.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Timelike, Utc};
use pipeline_testing::process::signal_group;
use serde_json::Value;

const INSTANCE: &str = "i-0123456789abcdef0";
const RECORDED_TOOLS: &[&str] = &[
    "git",
    "gpg",
    "docker",
    "shutdown",
    "systemctl",
    "apt-get",
    "curl",
    "ssh",
];
/// The hard timeout's systemd units, in the sandbox's unit directory.
const DEADLINE_TIMER: &str = "hhvm-worker-deadline.timer";
const DEADLINE_SERVICE: &str = "hhvm-worker-deadline.service";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A private directory with the stub tools, the fake S3 and secrets, and the script's work dirs.
struct Sandbox {
    root: PathBuf,
}

/// The log key of the binary package job `BINARY_ENV` describes.
const BINARY_LOG_KEY: &str = "logs/4.168.2/binary-package/debian-12-bookworm/i-0123456789abcdef0.log";

/// What one run of a script did.
struct Run {
    success: bool,
    /// Exit status; `None` when bash itself was killed by a signal.
    code: Option<i32>,
    output: String,
    calls: Vec<String>,
}

impl Run {
    /// The uploads of the binary package job's log (`BINARY_LOG_KEY`), in order.
    fn binary_package_log_uploads(&self) -> Vec<&String> {
        let destination = format!("s3://hhvm-scratch/{BINARY_LOG_KEY}");
        self.calls
            .iter()
            .filter(|call| call.starts_with("aws s3 cp") && call.contains(&destination))
            .collect()
    }

    /// Index of the first recorded call containing every fragment; panics naming it if none.
    fn position(&self, fragments: &[&str]) -> usize {
        self.calls
            .iter()
            .position(|call| fragments.iter().all(|f| call.contains(f)))
            .unwrap_or_else(|| {
                panic!(
                    "no call with {fragments:?} in:\n{}\noutput:\n{}",
                    self.calls.join("\n"),
                    self.output
                )
            })
    }

    fn has_call(&self, fragments: &[&str]) -> bool {
        self.calls.iter().any(|call| fragments.iter().all(|f| call.contains(f)))
    }
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("userdata-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["bin", "s3", "secrets", "work", "tmp", "home", "units"] {
            fs::create_dir_all(root.join(dir)).expect("create sandbox directories");
        }
        let stubs = fixtures().join("stubs");
        fs::copy(stubs.join("aws"), root.join("bin/aws")).expect("install the aws stub");
        for tool in RECORDED_TOOLS {
            fs::copy(stubs.join("record"), root.join("bin").join(tool)).expect("install a recording stub");
        }
        let sandbox = Sandbox { root };
        for secret in [
            "hhvm__package-signing-key",
            "hhvm__staging-repo-deploy-key",
            "hhvm__public-repo-deploy-key",
        ] {
            fs::write(sandbox.root.join("secrets").join(secret), format!("secret {secret}\n")).expect("write a secret");
        }
        sandbox
    }

    fn s3_path(&self, bucket_and_key: &str) -> PathBuf {
        self.root.join("s3").join(bucket_and_key)
    }

    fn put(&self, bucket_and_key: &str, content: &str) {
        let path = self.s3_path(bucket_and_key);
        fs::create_dir_all(path.parent().expect("keys have a parent")).expect("create fake S3 prefix");
        fs::write(path, content).expect("write fake S3 object");
    }

    fn get(&self, bucket_and_key: &str) -> Option<String> {
        fs::read_to_string(self.s3_path(bucket_and_key)).ok()
    }

    /// The command that runs `script` in the sandbox, its output going to the worker log.
    fn command(&self, script: &str, env: &[(&str, &str)]) -> Command {
        let log = fs::File::create(self.root.join("worker.log")).expect("create the worker log");
        let _ = fs::remove_file(self.root.join("calls.log"));
        let path = format!("{}:/usr/bin:/bin", self.root.join("bin").display());
        let mut command = Command::new("bash");
        command
            .arg(repository().join("userdata").join(script))
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.root.join("home"))
            .env("TMPDIR", self.root.join("tmp"))
            .env("CALLS_LOG", self.root.join("calls.log"))
            .env("FAKE_S3", self.root.join("s3"))
            .env("FAKE_SECRETS", self.root.join("secrets"))
            .env("FAKE_PACKAGING", fixtures().join("packaging"))
            .env("WORK_DIR", self.root.join("work"))
            .env("PACKAGING_DIR", self.root.join("packaging"))
            .env("OUT_DIR", self.root.join("out"))
            .env("WORKER_LOG", self.root.join("worker.log"))
            .env("SYSTEMD_UNIT_DIR", self.root.join("units"))
            .env("INSTANCE_ID", INSTANCE)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    fn run(&self, script: &str, env: &[(&str, &str)]) -> Run {
        let status = self.command(script, env).status().expect("run bash");
        self.finished(status)
    }

    /// Runs `script` until a recorded call contains `hang_on` (that stub then waits), then
    /// sends `signal` to the script's process group, as the power-off at the hard timeout does
    /// (SIGTERM) to every process.
    fn run_until_killed(&self, script: &str, env: &[(&str, &str)], hang_on: &str, signal: libc::c_int) -> Run {
        let mut env = env.to_vec();
        env.push(("FAKE_HANG", hang_on));
        let mut command = self.command(script, &env);
        command.process_group(0);
        // A test run under nohup would hand the script SIGHUP ignored, and bash cannot trap a
        // signal that was ignored when it started: the script gets the default, as on a worker.
        // SAFETY: signal(2) is async-signal-safe, and nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("run bash");
        let give_up = Instant::now() + Duration::from_secs(60);
        while !self.calls().iter().any(|call| call.contains(hang_on)) {
            if let Some(status) = child.try_wait().expect("poll bash") {
                let run = self.finished(status);
                panic!("the script ended before a call with {hang_on:?}:\n{}", run.output);
            }
            if Instant::now() > give_up {
                signal_group(child.id(), libc::SIGKILL);
                panic!("no call with {hang_on:?} within a minute: {:?}", self.calls());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(child.id(), signal);
        let status = child.wait().expect("wait for bash");
        self.finished(status)
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.root.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn finished(&self, status: ExitStatus) -> Run {
        Run {
            success: status.success(),
            code: status.code(),
            output: fs::read_to_string(self.root.join("worker.log")).unwrap_or_default(),
            calls: self.calls(),
        }
    }

    /// A PATH without `hidden`: the stubs (theirs removed) and links to every other program of
    /// /usr/bin and /bin, so that the host's own copy cannot stand in.
    fn path_without(&self, hidden: &[&str]) -> String {
        let host = self.root.join("host-bin");
        fs::create_dir_all(&host).expect("create the host tools directory");
        for dir in ["/usr/bin", "/bin"] {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name();
                if !hidden.iter().any(|tool| name == *tool) {
                    // A name already linked from /usr/bin is the same program.
                    let _ = std::os::unix::fs::symlink(entry.path(), host.join(&name));
                }
            }
        }
        for tool in hidden {
            let _ = fs::remove_file(self.root.join("bin").join(tool));
        }
        format!("{}:{}", self.root.join("bin").display(), host.display())
    }

    fn unit(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.root.join("units").join(name)).ok()
    }

    fn tmp_is_empty(&self) -> bool {
        fs::read_dir(self.root.join("tmp"))
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn sha256_of(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().expect("run sha256sum");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn marker(sandbox: &Sandbox, key: &str) -> Value {
    let text = sandbox
        .get(&format!("hhvm-scratch/{key}"))
        .unwrap_or_else(|| panic!("no marker at {key}"));
    serde_json::from_str(&text).expect("the marker is JSON")
}

fn file_names(marker: &Value) -> Vec<String> {
    marker["files"]
        .as_array()
        .expect("files is an array")
        .iter()
        .map(|f| f["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The hard timeout is the first effect, armed both ways: shutdown's timer, then the systemd
/// timer.
fn assert_timeout_armed_first(run: &Run, minutes: &str) {
    let first: Vec<&str> = run.calls.iter().take(3).map(String::as_str).collect();
    assert_eq!(
        first,
        [
            format!("shutdown -h +{minutes}").as_str(),
            "systemctl daemon-reload",
            "systemctl enable --now hhvm-worker-deadline.timer"
        ],
        "{}",
        run.output
    );
}

/// The checks every run shares: the hard timeout is armed first, and the instance powers off
/// last, after the complete log went up.
fn assert_bounded_and_logged(run: &Run, minutes: &str, log_key: &str) {
    assert_timeout_armed_first(run, minutes);
    assert_eq!(run.calls.last().map(String::as_str), Some("shutdown -h now"));
    let before_power_off = &run.calls[run.calls.len().saturating_sub(2)];
    assert!(
        before_power_off.starts_with("aws s3 cp")
            && before_power_off.contains(&format!("s3://hhvm-scratch/{log_key} --metadata complete=true")),
        "the complete log's upload comes right before power-off: {:?}",
        run.calls
    );
}

// ---------------------------------------------------------------- make-binary-package.sh

const BINARY_ENV: &[(&str, &str)] = &[
    ("VERSION", "4.168.2"),
    ("IS_NIGHTLY", "false"),
    ("DISTRO", "debian-12-bookworm"),
    ("PACKAGING_BRANCH", "HHVM-4.168"),
    ("SOURCE_BUCKET", "hhvm-scratch"),
    ("SOURCE_KEY", "hhvm-4.168.2.tar.gz"),
];

#[test]
fn binary_package_uploads_packages_with_checksums_then_the_marker_last() {
    let sandbox = Sandbox::new("binary");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "source tarball");
    let run = sandbox.run("make-binary-package.sh", BINARY_ENV);
    assert!(run.success, "{}", run.output);

    assert_bounded_and_logged(
        &run,
        "180",
        "logs/4.168.2/binary-package/debian-12-bookworm/i-0123456789abcdef0.log",
    );
    let clone = run.position(&["git clone", "--branch HHVM-4.168", "https://github.com/hhvm/packaging"]);
    let build = run.position(&["build-command debian-12-bookworm VERSION=4.168.2 IS_NIGHTLY=false"]);
    let upload = run.position(&[
        "aws s3 cp",
        "--recursive",
        "s3://hhvm-scratch/4.168.2/debian-12-bookworm/i-0123456789abcdef0/",
    ]);
    let cache = run.position(&["aws s3 sync", "s3://hhvm-nodist/debian-12-bookworm/"]);
    let marker_upload = run.position(&["s3://hhvm-scratch/markers/4.168.2/binary-package/debian-12-bookworm.json"]);
    assert!(
        clone < build && build < upload && upload < marker_upload && cache < marker_upload,
        "{:?}",
        run.calls
    );
    assert!(
        !run.calls.iter().any(|c| c.starts_with("curl ")),
        "INSTANCE_ID was given, IMDS must not be asked"
    );

    // This attempt's own prefix: the instance that built it.
    let staged = "hhvm-scratch/4.168.2/debian-12-bookworm/i-0123456789abcdef0";
    let sums = sandbox
        .get(&format!("{staged}/SHA256SUMS"))
        .expect("SHA256SUMS uploaded");
    let deb = sandbox.s3_path(&format!("{staged}/hhvm_4.168.2-1~bookworm_amd64.deb"));
    assert!(
        sums.contains(&format!("{}  hhvm_4.168.2-1~bookworm_amd64.deb", sha256_of(&deb))),
        "{sums}"
    );
    assert!(sums.contains("hhvm_4.168.2-1~bookworm_amd64.changes"), "{sums}");
    assert!(
        sandbox.get(&format!("{staged}/hhvm-4.168.2.tar.gz")).is_none(),
        "the source tarball is not staged back"
    );

    let marker = marker(&sandbox, "markers/4.168.2/binary-package/debian-12-bookworm.json");
    assert_eq!(marker["version"], "4.168.2");
    assert_eq!(marker["distro"], "debian-12-bookworm");
    assert_eq!(marker["job"], "binary-package");
    assert_eq!(marker["packageVersion"], "4.168.2-1~bookworm");
    assert_eq!(marker["instance"], "i-0123456789abcdef0");
    assert_eq!(
        marker["artifacts"],
        "s3://hhvm-scratch/4.168.2/debian-12-bookworm/i-0123456789abcdef0/"
    );
    assert_eq!(
        marker["sourceTarballSha256"],
        sha256_of(&sandbox.s3_path("hhvm-scratch/hhvm-4.168.2.tar.gz")).as_str()
    );
    let names = file_names(&marker);
    assert!(
        names.contains(&"SHA256SUMS".to_string()) && names.contains(&"hhvm_4.168.2-1~bookworm_amd64.deb".to_string()),
        "{names:?}"
    );
    assert!(
        marker["durationSeconds"].is_number() && marker["finishedAt"].is_string(),
        "{marker}"
    );
    assert!(
        sandbox
            .get("hhvm-scratch/logs/4.168.2/binary-package/debian-12-bookworm/i-0123456789abcdef0.log")
            .is_some()
    );
}

#[test]
fn failed_build_uploads_its_log_and_writes_no_marker() {
    let sandbox = Sandbox::new("binary-fails");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "source tarball");
    let mut env = BINARY_ENV.to_vec();
    env.push(("FAKE_BUILD_FAILS", "1"));
    let run = sandbox.run("make-binary-package.sh", &env);
    assert!(!run.success);
    assert!(run.output.contains("the build command failed"), "{}", run.output);
    assert_bounded_and_logged(
        &run,
        "180",
        "logs/4.168.2/binary-package/debian-12-bookworm/i-0123456789abcdef0.log",
    );
    assert!(!run.has_call(&["markers/"]), "{:?}", run.calls);
    assert!(
        !run.has_call(&["s3://hhvm-scratch/4.168.2/"]),
        "nothing staged: {:?}",
        run.calls
    );
    assert!(
        sandbox
            .get("hhvm-scratch/markers/4.168.2/binary-package/debian-12-bookworm.json")
            .is_none()
    );
    let log = sandbox.get("hhvm-scratch/logs/4.168.2/binary-package/debian-12-bookworm/i-0123456789abcdef0.log");
    assert!(log.is_some_and(|log| log.contains("the build command failed")));
}

#[test]
fn instance_id_comes_from_imds_v2_when_not_given() {
    let sandbox = Sandbox::new("binary-imds");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "source tarball");
    let mut env = BINARY_ENV.to_vec();
    env.push(("INSTANCE_ID", ""));
    let run = sandbox.run("make-binary-package.sh", &env);
    assert!(run.success, "{}", run.output);
    let token = run.position(&[
        "curl",
        "-X PUT",
        "X-aws-ec2-metadata-token-ttl-seconds",
        "/latest/api/token",
    ]);
    let id = run.position(&["curl", "X-aws-ec2-metadata-token:", "/latest/meta-data/instance-id"]);
    assert!(token < id);
}

// ---------------------------------------------------------------- make-source-tarball.sh

const SOURCE_ENV: &[(&str, &str)] = &[
    ("VERSION", "2026.11.21"),
    ("IS_NIGHTLY", "true"),
    ("PACKAGING_BRANCH", "master"),
    ("SOURCE_BUCKET", "hhvm-downloads"),
    ("SOURCE_KEY", "source/nightlies/hhvm-nightly-2026.11.21.tar.gz"),
];

#[test]
fn source_tarball_is_signed_uploaded_with_checksums_then_marked() {
    let sandbox = Sandbox::new("source");
    let run = sandbox.run("make-source-tarball.sh", SOURCE_ENV);
    assert!(run.success, "{}", run.output);
    assert_bounded_and_logged(&run, "60", "logs/2026.11.21/source-tarball/i-0123456789abcdef0.log");

    let secret = run.position(&[
        "aws secretsmanager get-secret-value",
        "--secret-id hhvm/package-signing-key",
    ]);
    let import = run.position(&["gpg --batch --quiet --import"]);
    let command = run.position(&["source-command VERSION=2026.11.21 IS_NIGHTLY=true GIT_SSH_COMMAND=set"]);
    let sign = run.position(&["gpg", "--local-user D386EB94", "--detach-sign"]);
    // Uploaded under temporary names, then copied into place (the tarball after its
    // signature and checksums), the temporary copies removed, and the marker last.
    let uploads = "s3://hhvm-scratch/uploads/source-tarball/i-0123456789abcdef0";
    let temporary = run
        .calls
        .iter()
        .position(|call| call.ends_with(&format!(" {uploads}/hhvm-nightly-2026.11.21.tar.gz")))
        .unwrap_or_else(|| panic!("no upload under a temporary name: {:?}", run.calls));
    let final_key = "s3://hhvm-downloads/source/nightlies/hhvm-nightly-2026.11.21.tar.gz";
    let in_place = |suffix: &str| {
        run.calls
            .iter()
            .position(|call| {
                call.starts_with(&format!("aws s3 cp --only-show-errors {uploads}/"))
                    && call.ends_with(&format!(" {final_key}{suffix}"))
            })
            .unwrap_or_else(|| panic!("no copy into {final_key}{suffix}: {:?}", run.calls))
    };
    let (sig, sums, tarball) = (in_place(".sig"), in_place(".sha256"), in_place(""));
    let removed = run.position(&["aws s3 rm", "--recursive", &format!("{uploads}/")]);
    let marker_upload = run.position(&["s3://hhvm-scratch/markers/2026.11.21/source-tarball.json"]);
    assert!(
        secret < import
            && command < sign
            && sign < temporary
            && temporary < sig
            && sig < sums
            && sums < tarball
            && tarball < removed
            && removed < marker_upload,
        "{:?}",
        run.calls
    );
    assert!(
        sandbox
            .get("hhvm-scratch/uploads/source-tarball/i-0123456789abcdef0/hhvm-nightly-2026.11.21.tar.gz")
            .is_none(),
        "the temporary copies are removed"
    );
    assert!(run.has_call(&["--secret-id hhvm/staging-repo-deploy-key"]));

    let key = "hhvm-downloads/source/nightlies/hhvm-nightly-2026.11.21.tar.gz";
    assert_eq!(sandbox.get(key).as_deref(), Some("tarball of 2026.11.21\n"));
    assert!(
        sandbox
            .get(&format!("{key}.sig"))
            .is_some_and(|s| s.contains("PGP SIGNATURE"))
    );
    let sums = sandbox.get(&format!("{key}.sha256")).expect("checksums uploaded");
    assert!(
        sums.contains(&format!(
            "{}  hhvm-nightly-2026.11.21.tar.gz",
            sha256_of(&sandbox.s3_path(key))
        )),
        "{sums}"
    );

    let marker = marker(&sandbox, "markers/2026.11.21/source-tarball.json");
    assert_eq!(marker["sourceTarballSha256"], sha256_of(&sandbox.s3_path(key)).as_str());
    assert_eq!(file_names(&marker).len(), 3, "{marker}");
    assert!(sandbox.tmp_is_empty(), "secrets are removed on exit");
    assert!(
        !run.output.contains("secret hhvm__"),
        "no secret is printed: {}",
        run.output
    );
}

#[test]
fn failed_signing_leaves_no_tarball_and_no_marker() {
    let sandbox = Sandbox::new("source-fails");
    let mut env = SOURCE_ENV.to_vec();
    env.push(("FAKE_FAIL", "--detach-sign"));
    let run = sandbox.run("make-source-tarball.sh", &env);
    assert!(!run.success);
    assert_bounded_and_logged(&run, "60", "logs/2026.11.21/source-tarball/i-0123456789abcdef0.log");
    assert!(
        !run.has_call(&["markers/"]) && !run.has_call(&["s3://hhvm-downloads/"]),
        "{:?}",
        run.calls
    );
    assert!(sandbox.tmp_is_empty(), "secrets are removed on failure too");
}

// update-repos.sh runs against moto with the real tools: tests/tests/publish_repositories.rs.
// Here only what it refuses before any effect (below).

const REPO_ENV: &[(&str, &str)] = &[("VERSION", "4.168.2"), ("PACKAGING_BRANCH", "HHVM-4.168")];

// ---------------------------------------------------------------- publish-release-source.sh

#[test]
fn release_source_is_pushed_then_copied_then_marked() {
    let sandbox = Sandbox::new("publish");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "tarball");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz.sig", "sig");
    sandbox.put(
        "hhvm-scratch/hhvm-4.168.2.tar.gz.sha256",
        "abc123  hhvm-4.168.2.tar.gz\ndef  hhvm-4.168.2.tar.gz.sig\n",
    );
    let run = sandbox.run("publish-release-source.sh", &[("VERSION", "4.168.2")]);
    assert!(run.success, "{}", run.output);
    assert_bounded_and_logged(
        &run,
        "30",
        "logs/4.168.2/publish-release-source/i-0123456789abcdef0.log",
    );

    let fetch = run.position(&[
        "git -C",
        "fetch",
        "git@github.com:hhvm/hhvm-staging.git",
        "refs/tags/HHVM-4.168.2:refs/tags/HHVM-4.168.2",
    ]);
    let push = run.position(&[
        "git -C",
        "push",
        "git@github.com:facebook/hhvm.git",
        "refs/tags/HHVM-4.168.2:refs/tags/HHVM-4.168.2",
        "0123456789abcdef0123456789abcdef01234567:refs/heads/HHVM-4.168",
    ]);
    let copy = run.position(&[
        "aws s3 cp",
        "s3://hhvm-scratch/hhvm-4.168.2.tar.gz s3://hhvm-downloads/source/hhvm-4.168.2.tar.gz",
    ]);
    let marker_upload = run.position(&["s3://hhvm-scratch/markers/4.168.2/publish-release-source.json"]);
    assert!(fetch < push && push < copy && copy < marker_upload, "{:?}", run.calls);
    for suffix in ["", ".sig", ".sha256"] {
        assert!(
            sandbox
                .get(&format!("hhvm-downloads/source/hhvm-4.168.2.tar.gz{suffix}"))
                .is_some(),
            "{suffix}"
        );
    }
    let marker = marker(&sandbox, "markers/4.168.2/publish-release-source.json");
    assert_eq!(marker["sourceTarballSha256"], "abc123");
    assert_eq!(marker["branch"], "HHVM-4.168");
    assert!(sandbox.tmp_is_empty(), "deploy keys are removed on exit");
}

#[test]
fn a_refused_push_copies_nothing() {
    let sandbox = Sandbox::new("publish-refused");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "tarball");
    let run = sandbox.run(
        "publish-release-source.sh",
        &[("VERSION", "4.168.2"), ("FAKE_FAIL", " push ")],
    );
    assert!(!run.success);
    assert!(
        !run.has_call(&["s3://hhvm-downloads/"]) && !run.has_call(&["markers/"]),
        "{:?}",
        run.calls
    );
    assert_bounded_and_logged(
        &run,
        "30",
        "logs/4.168.2/publish-release-source/i-0123456789abcdef0.log",
    );
}

// ---------------------------------------------------------------- every script

/// A run that stopped before any effect: only the hard timeout and the power-off were recorded.
fn assert_no_effect(run: &Run, minutes: &str) {
    assert!(!run.success);
    assert_eq!(run.calls.len(), 4, "{:?}\n{}", run.calls, run.output);
    assert_timeout_armed_first(run, minutes);
    assert_eq!(run.calls[3], "shutdown -h now");
}

#[test]
fn missing_variables_fail_before_any_effect_naming_each() {
    let cases: [(&str, &str, &str); 4] = [
        (
            "make-binary-package.sh",
            "180",
            "VERSION IS_NIGHTLY DISTRO PACKAGING_BRANCH SOURCE_BUCKET SOURCE_KEY",
        ),
        (
            "make-source-tarball.sh",
            "60",
            "VERSION IS_NIGHTLY PACKAGING_BRANCH SOURCE_BUCKET SOURCE_KEY",
        ),
        ("update-repos.sh", "120", "VERSION PACKAGING_BRANCH"),
        ("publish-release-source.sh", "30", "VERSION"),
    ];
    for (script, minutes, missing) in cases {
        let sandbox = Sandbox::new("missing");
        let run = sandbox.run(script, &[]);
        assert_no_effect(&run, minutes);
        assert!(
            run.output
                .contains(&format!("required variable(s) not set: {missing} ")),
            "{script}: {}",
            run.output
        );
    }
}

#[test]
fn hostile_values_fail_before_any_effect() {
    /// (script, timeout minutes, overriding variables)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: [Case; 7] = [
        ("make-binary-package.sh", "180", &[("DISTRO", "debian-12-bookworm;id")]),
        ("make-binary-package.sh", "180", &[("VERSION", "$(id)")]),
        (
            "make-source-tarball.sh",
            "60",
            &[("PACKAGING_BRANCH", "master; rm -rf /")],
        ),
        ("update-repos.sh", "120", &[("DISTROS", "debian-12-bookworm x`id`")]),
        ("update-repos.sh", "120", &[("REPOSITORY_ARCHITECTURES", "amd64;id")]),
        ("update-repos.sh", "120", &[("BY_HASH_RETENTION_DAYS", "14 days")]),
        ("publish-release-source.sh", "30", &[("VERSION", "2026.11.21")]),
    ];
    for (script, minutes, overrides) in cases {
        let mut env: Vec<(&str, &str)> = BINARY_ENV.iter().chain(SOURCE_ENV).chain(REPO_ENV).copied().collect();
        env.push(("VERSION", "4.168.2"));
        env.extend(overrides.iter().copied());
        let sandbox = Sandbox::new("hostile");
        let run = sandbox.run(script, &env);
        assert_no_effect(&run, minutes);
        assert!(run.output.contains("is not"), "{script} {overrides:?}: {}", run.output);
    }
}

// ---------------------------------------------------------------- the hard timeout and the image

/// The deadline the timer names, as the script wrote it (`OnCalendar=2026-11-21 15:04:05 UTC`).
fn on_calendar(timer: &str) -> NaiveDateTime {
    let value = timer
        .lines()
        .find_map(|line| line.strip_prefix("OnCalendar="))
        .unwrap_or_else(|| panic!("no OnCalendar in:\n{timer}"));
    NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S UTC").unwrap_or_else(|e| panic!("OnCalendar={value}: {e}"))
}

#[test]
fn a_failed_shutdown_timer_leaves_the_persistent_systemd_timer_to_bound_the_job() {
    let sandbox = Sandbox::new("deadline-timer");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "source tarball");
    let mut env = BINARY_ENV.to_vec();
    env.push(("FAKE_FAIL", "shutdown -h +"));
    let before = Utc::now().naive_utc().with_nanosecond(0).expect("whole seconds");
    let run = sandbox.run("make-binary-package.sh", &env);
    let after = Utc::now().naive_utc();
    assert!(run.success, "one timer is enough: {}", run.output);
    assert_timeout_armed_first(&run, "180");
    assert!(
        run.position(&["systemctl enable --now"]) < run.position(&["git clone"]),
        "{:?}",
        run.calls
    );

    let timer = sandbox.unit(DEADLINE_TIMER).expect("the timer unit is installed");
    let deadline = on_calendar(&timer);
    let timeout = chrono::Duration::minutes(180);
    assert!(
        before + timeout <= deadline && deadline <= after + timeout,
        "{deadline} is not 180 min after the start ({before}..{after})"
    );
    // Persistent: a boot past the deadline (the run of shutdown's timer is lost) fires it at once.
    assert_eq!(
        timer,
        format!(
            "[Timer]\nOnCalendar={}\nPersistent=true\n[Install]\nWantedBy=timers.target\n",
            deadline.format("%Y-%m-%d %H:%M:%S UTC")
        )
    );
    assert_eq!(
        sandbox.unit(DEADLINE_SERVICE).as_deref(),
        Some("[Service]\nExecStart=/bin/systemctl poweroff --force\n")
    );
    assert!(
        run.output.contains(&format!(
            "hard timeout at {} by: systemd\n",
            deadline.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        "{}",
        run.output
    );
}

#[test]
fn with_no_hard_timeout_the_job_stops_before_any_effect_and_uploads_its_log() {
    let sandbox = Sandbox::new("no-timeout");
    let mut env = BINARY_ENV.to_vec();
    env.push(("FAKE_BROKEN", "shutdown systemctl"));
    let run = sandbox.run("make-binary-package.sh", &env);
    assert!(!run.success);
    assert!(run.output.contains("by: nothing"), "{}", run.output);
    assert!(
        run.output.contains("error: no hard timeout could be armed"),
        "{}",
        run.output
    );
    let log_key = "logs/4.168.2/binary-package/debian-12-bookworm/i-0123456789abcdef0.log";
    assert_eq!(
        run.calls,
        [
            "shutdown -h +180".to_string(),
            "systemctl daemon-reload".to_string(),
            format!(
                "aws s3 cp --only-show-errors {} s3://hhvm-scratch/{log_key} --metadata complete=true",
                sandbox.root.join("worker.log").display()
            ),
            "shutdown -h now".to_string(),
        ],
        "{}",
        run.output
    );
    assert!(
        sandbox
            .get(&format!("hhvm-scratch/{log_key}"))
            .is_some_and(|log| log.contains("no hard timeout could be armed"))
    );
    assert!(
        sandbox.unit(DEADLINE_TIMER).is_none() && sandbox.unit(DEADLINE_SERVICE).is_none(),
        "no half-installed timer is left"
    );
}

#[test]
fn a_running_job_uploads_its_log_as_it_grows_and_marks_the_last_upload_complete() {
    let sandbox = Sandbox::new("log-uploads");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "source tarball");
    let mut env = BINARY_ENV.to_vec();
    env.extend([("LOG_UPLOAD_SECONDS", "1"), ("FAKE_SLOW", "git clone")]);
    let run = sandbox.run("make-binary-package.sh", &env);
    assert!(run.success, "{}", run.output);
    let uploads = run.binary_package_log_uploads();
    let (last, earlier) = uploads.split_last().expect("the log went up");
    assert!(last.ends_with("--metadata complete=true"), "{uploads:?}");
    assert!(
        !earlier.is_empty(),
        "a job running past LOG_UPLOAD_SECONDS uploads its log while it runs"
    );
    assert!(
        earlier.iter().all(|call| !call.contains("--metadata")),
        "only the last upload says complete: {uploads:?}"
    );
    assert_bounded_and_logged(&run, "180", BINARY_LOG_KEY);
    let mut bad = BINARY_ENV.to_vec();
    bad.push(("LOG_UPLOAD_SECONDS", "0"));
    let refused = sandbox.run("make-binary-package.sh", &bad);
    assert!(!refused.success);
    assert!(
        refused.output.contains("LOG_UPLOAD_SECONDS is '0'"),
        "{}",
        refused.output
    );
}

#[test]
fn a_log_that_stops_growing_is_not_uploaded_again_until_the_job_ends() {
    let sandbox = Sandbox::new("idle-log");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "source tarball");
    let mut env = BINARY_ENV.to_vec();
    // Six ticks of the uploader while the job is silent in one step.
    env.extend([
        ("LOG_UPLOAD_SECONDS", "1"),
        ("FAKE_SLOW", "git clone"),
        ("FAKE_SLOW_SECONDS", "6"),
    ]);
    let run = sandbox.run("make-binary-package.sh", &env);
    assert!(run.success, "{}", run.output);
    let uploads = run.binary_package_log_uploads();
    let (last, earlier) = uploads.split_last().expect("the log went up");
    assert!(last.ends_with("--metadata complete=true"), "{uploads:?}");
    // One upload of what the log held when the step began (two if a line landed between the
    // first ticks), none while nothing was written, and the last one on exit.
    assert!(
        (1..=2).contains(&earlier.len()),
        "a silent job uploaded its unchanged log {} times: {uploads:?}",
        earlier.len()
    );
}

#[test]
fn a_kill_while_the_timeout_is_armed_still_powers_off() {
    let sandbox = Sandbox::new("killed-arming");
    let run = sandbox.run_until_killed("make-binary-package.sh", BINARY_ENV, "systemctl enable", libc::SIGTERM);
    assert_eq!(run.code, Some(143), "{}", run.output);
    assert!(run.output.contains("killed by SIGTERM"), "{}", run.output);
    assert!(run.output.contains("failed with status 143"), "{}", run.output);
    assert_eq!(
        run.calls.last().map(String::as_str),
        Some("shutdown -h now"),
        "{:?}",
        run.calls
    );
    assert!(!run.has_call(&["git clone"]), "{:?}", run.calls);
}

#[test]
fn a_job_killed_midway_logs_the_kill_and_fails() {
    for (signal, name, status) in [(libc::SIGTERM, "SIGTERM", 143), (libc::SIGHUP, "SIGHUP", 129)] {
        let sandbox = Sandbox::new("killed");
        sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "source tarball");
        let run = sandbox.run_until_killed("make-binary-package.sh", BINARY_ENV, "git clone", signal);
        assert_eq!(run.code, Some(status), "128 + the signal's number: {}", run.output);
        assert!(
            run.output
                .contains(&format!("killed by {name} (hard timeout: 180 min, at ")),
            "{}",
            run.output
        );
        assert!(
            run.output.contains(&format!("failed with status {status}\n")),
            "{}",
            run.output
        );
        assert!(!run.output.contains("finished"), "{}", run.output);
        let log_key = "logs/4.168.2/binary-package/debian-12-bookworm/i-0123456789abcdef0.log";
        assert_bounded_and_logged(&run, "180", log_key);
        assert!(
            sandbox
                .get(&format!("hhvm-scratch/{log_key}"))
                .is_some_and(|log| log.contains(&format!("killed by {name}")))
        );
        assert!(!run.has_call(&["markers/"]), "{:?}", run.calls);
    }
}

#[test]
fn a_local_run_arms_no_timer_and_does_not_power_off() {
    let sandbox = Sandbox::new("local");
    sandbox.put("hhvm-scratch/hhvm-4.168.2.tar.gz", "source tarball");
    let mut env = BINARY_ENV.to_vec();
    env.push(("SHUTDOWN_WHEN_DONE", "false"));
    let run = sandbox.run("make-binary-package.sh", &env);
    assert!(run.success, "{}", run.output);
    assert!(
        !run.has_call(&["shutdown"]) && !run.has_call(&["systemctl"]),
        "{:?}",
        run.calls
    );
    assert!(sandbox.unit(DEADLINE_TIMER).is_none());
    assert!(run.has_call(&["s3://hhvm-scratch/markers/4.168.2/binary-package/debian-12-bookworm.json"]));
}

#[test]
fn a_missing_tool_fails_before_any_effect_naming_each() {
    /// (script, its variables, tools taken away, how the error names them)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case; 4] = [
        (
            "make-binary-package.sh",
            BINARY_ENV,
            &["docker", "git", "curl"],
            "curl git docker",
        ),
        ("make-source-tarball.sh", SOURCE_ENV, &["ssh", "gpg"], "gpg ssh"),
        ("update-repos.sh", REPO_ENV, &["gpg", "dpkg-deb"], "dpkg-deb gpg"),
        ("publish-release-source.sh", &[("VERSION", "4.168.2")], &["aws"], "aws"),
    ];
    for (script, variables, hidden, named) in cases {
        let sandbox = Sandbox::new("missing-tool");
        let path = sandbox.path_without(hidden);
        let mut env = variables.to_vec();
        env.push(("PATH", path.as_str()));
        let run = sandbox.run(script, &env);
        assert!(!run.success, "{script}: {}", run.output);
        assert!(
            run.output.contains(&format!(
                "error: the worker image lacks: {named} (see docs/workers.md)\n"
            )),
            "{script}: {}",
            run.output
        );
        // Checked once the job's packages are installed (they provide some of the tools).
        assert!(run.has_call(&["apt-get install"]), "{script}: {:?}", run.calls);
        let only_timer_packages_log_and_power_off = run.calls.iter().all(|call| {
            call.starts_with("shutdown -h ")
                || call.starts_with("systemctl ")
                || call.starts_with("apt-get ")
                || (call.starts_with("aws s3 cp") && call.contains("s3://hhvm-scratch/logs/"))
        });
        assert!(only_timer_packages_log_and_power_off, "{script}: {:?}", run.calls);
        assert_eq!(
            run.calls.last().map(String::as_str),
            Some("shutdown -h now"),
            "{script}"
        );
        if !hidden.contains(&"aws") {
            assert!(
                run.has_call(&["aws s3 cp", "s3://hhvm-scratch/logs/"]),
                "{script}: the log goes up: {:?}",
                run.calls
            );
        }
    }
}
