//! The local EC2 worker: what an instance's boot would do, on this machine. It polls moto for
//! instances in `pending`/`running`, and runs each new one's user data with bash in a sandbox
//! directory (`<run dir>/workers/<instance id>/`), with stubs first on PATH (`shutdown`, `systemctl`,
//! `apt-get`) and the real tools after them (the `aws` CLI pointed at moto, git, gpg, python3,
//! dpkg-deb). The script's output goes to its WORKER_LOG as cloud-init's would. When the script
//! exits, the instance is terminated in moto, as EC2 terminates an instance that powers itself
//! off (its exit handler's `shutdown -h now`, which the stub only records: the termination is
//! the local worker's, through the SDK, not an AWS CLI run of the script's); when the instance
//! is terminated from outside while the script runs, the script gets SIGTERM, as on an instance
//! shutting down. Instances without a `JobKind` tag are not the pipeline's: they just
//! run.
//!
//! A spot reclaim, on demand: while the knob `<failing builds>/<version>_<distro>.interrupt`
//! exists, that distro's build waits (the local build command checks it), and the local worker
//! interrupts the build's instance if it is a spot instance, about a second after it sees the
//! knob: it tags the instance `LocalStackInterruption=spot` (tests/moto/server.py then gives its
//! termination the state reason EC2 gives an interrupted spot instance), terminates it, stops
//! the script as a shutdown would, and only then removes the knob, so the script cannot go on
//! to build in between and the on-demand rebuild that follows is not held. With the knob
//! `<version>_<distro>.interrupt-after-marker` instead, the build runs to its end (success marker
//! written) and the local worker then reclaims the spot instance the same way in place of its
//! power-off: EC2 taking the capacity back in the seconds between the marker and the shutdown.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, InstanceAttributeName, InstanceLifecycleType, Tag};

use crate::{Context, StackError};
use pipeline_testing::process::{GroupProcess, signal_group};

/// `shutdown` on a worker: the script's hard timer (`shutdown -h +N`) is recorded and ignored
/// (the local worker ends with the stack); powering off now terminates the instance, as
/// `InstanceInitiatedShutdownBehavior=terminate` does on EC2.
/// How often a local worker's log goes up while its job runs: often enough to follow a local
/// run's jobs, seldom enough that a job of a few seconds sends its log once (each upload is an
/// AWS CLI run, the costliest thing a local worker does).
const LOG_UPLOAD_SECONDS: &str = "15";

/// The tag that tells tests/moto/server.py an instance's termination is a spot interruption.
const INTERRUPTION_TAG: &str = "LocalStackInterruption";

/// How long after the local worker sees an interruption knob it reclaims the instance: the
/// build is waiting by then, as a real one would be working.
const INTERRUPTION_DELAY: Duration = Duration::from_secs(1);

/// The knob that makes the spot build of `version` for `distro` be interrupted.
pub(crate) fn interruption_knob(failing_builds_dir: &Path, version: &str, distro: &str) -> PathBuf {
    failing_builds_dir.join(format!("{version}_{distro}.interrupt"))
}

/// The knob that makes the spot build of `version` for `distro` be interrupted once its script
/// has succeeded (its success marker written).
pub(crate) fn interruption_after_marker_knob(failing_builds_dir: &Path, version: &str, distro: &str) -> PathBuf {
    failing_builds_dir.join(format!("{version}_{distro}.interrupt-after-marker"))
}

const SHUTDOWN_STUB: &str = r#"#!/bin/bash
set -euo pipefail
for argument in "$@"; do
  case $argument in
  +*)
    printf '%s timer %s ignored: shutdown %s\n' "$(date -u +%FT%TZ)" "$argument" "$*" >>"$LOCAL_WORKER_DIR/shutdown.log"
    exit 0
    ;;
  now)
    printf '%s power off: %s is terminated as the script exits\n' "$(date -u +%FT%TZ)" "$INSTANCE_ID" >>"$LOCAL_WORKER_DIR/shutdown.log"
    exit 0
    ;;
  esac
done
echo "shutdown (local worker): unsupported arguments: $*" >&2
exit 1
"#;

/// `systemctl` on a worker: the script's persistent deadline timer (written into the sandbox's
/// `systemd/`) is recorded and never armed, like the `shutdown` timer: the host's own systemd
/// is never touched.
const SYSTEMCTL_STUB: &str = r#"#!/bin/bash
printf '%s timer ignored: systemctl %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOCAL_WORKER_DIR/shutdown.log"
"#;

/// `apt-get` on a worker: the tools are already on this machine (INSTALL_PACKAGES=false makes
/// the scripts skip it; this catches any other call).
const APT_GET_STUB: &str = r#"#!/bin/bash
printf 'apt-get %s\n' "$*" >>"$LOCAL_WORKER_DIR/apt-get.log"
"#;

/// gpg as the worker finds it, except that signing a repository's Release fails while the
/// local stack's failure knob for the version's repository update is set (the file
/// `<VERSION>_update-repositories` in LOCAL_STACK_FAILING_BUILDS): the update then dies after
/// its pool upload and before any index, as a worker that crashes midway would.
const GPG_STUB: &str = r#"#!/bin/bash
failing=${LOCAL_STACK_FAILING_BUILDS:-}
if [[ -n $failing && -e $failing/${VERSION:-}_update-repositories && " $* " == *" --clearsign "* ]]; then
  echo "gpg: signing failed on purpose ($failing/${VERSION}_update-repositories)" >&2
  exit 2
fi
PATH=${PATH#*:} exec gpg "$@"
"#;

/// A GNUPGHOME longer than this would bring gpg-agent's longest socket path
/// (`<home>/S.gpg-agent.browser`) near the 108 bytes of a Unix socket address; gpg-agent
/// refused to start with a 107-byte one (a run directory whose process ID had one digit more),
/// so this keeps a margin. Such a worker's GNUPGHOME goes to a short temporary path, removed
/// when the script ends.
const MAX_GNUPGHOME_LENGTH: usize = 100 - "/S.gpg-agent.browser".len();

/// One finished run of a worker's user data.
#[derive(Debug, Clone)]
pub struct WorkerRun {
    pub instance: String,
    /// `JobKind` tag of the instance (`source-tarball`, `binary-package`, …).
    pub job: String,
    /// `Distro` tag, for binary-package workers.
    pub distro: Option<String>,
    /// Exit status of the script; `None` when it did not run to an exit (no user data, killed).
    pub exit_code: Option<i32>,
    pub duration: Duration,
    pub sandbox: PathBuf,
}

impl WorkerRun {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The script's output (its WORKER_LOG).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.sandbox.join("worker.log")).unwrap_or_default()
    }
}

/// What every worker of a stack gets.
pub(crate) struct WorkerConfig {
    pub ec2: aws_sdk_ec2::Client,
    /// The failure knobs' directory (`LOCAL_STACK_FAILING_BUILDS` of the scripts).
    pub failing_builds_dir: PathBuf,
    pub run_dir: PathBuf,
    /// Directories searched after the stubs (the served AWS CLI's `tests/aws-cli/bin` first, then
    /// the venv's `bin`).
    pub path: String,
    /// Environment of every script besides the per-instance paths.
    pub env: Vec<(String, String)>,
    pub poll_interval: Duration,
    pub verbose: bool,
}

#[derive(Default)]
struct Shared {
    runs: Mutex<Vec<WorkerRun>>,
    running: Mutex<HashMap<String, u32>>,
    /// Instances terminated from outside whose scripts were sent SIGTERM.
    shut_down: Mutex<HashSet<String>>,
    stopping: AtomicBool,
}

/// The running local worker: a task of the stack's runtime.
pub(crate) struct LocalWorker {
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl LocalWorker {
    pub fn start(config: WorkerConfig) -> LocalWorker {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(poll_instances(Arc::new(config), shared.clone()));
        LocalWorker { task, shared }
    }

    /// Every run that finished so far, in order of finishing.
    pub fn runs(&self) -> Vec<WorkerRun> {
        self.shared.runs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// IDs of the instances whose scripts run now.
    pub fn running(&self) -> Vec<String> {
        let running = self.shared.running.lock().unwrap_or_else(|p| p.into_inner());
        running.keys().cloned().collect()
    }

    /// Stops polling and kills the scripts still running (their process groups).
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.task.abort();
        let pids: Vec<u32> = {
            let running = self.shared.running.lock().unwrap_or_else(|p| p.into_inner());
            running.values().copied().collect()
        };
        for pid in &pids {
            signal_group(*pid, libc::SIGTERM);
        }
        if !pids.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            for pid in &pids {
                signal_group(*pid, libc::SIGKILL);
            }
        }
    }
}

/// An instance to run: ID, the tags that say what it is for, and its market.
struct NewInstance {
    id: String,
    job: String,
    distro: Option<String>,
    version: Option<String>,
    /// EC2 launched it on spot capacity (its lifecycle).
    spot: bool,
}

async fn poll_instances(config: Arc<WorkerConfig>, shared: Arc<Shared>) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut last_error = String::new();
    while !shared.stopping.load(Ordering::SeqCst) {
        match live_instances(&config.ec2).await {
            Ok(instances) => {
                // An instance terminated in moto while its script runs shuts down, as on EC2:
                // the script gets SIGTERM (and its exit handler runs).
                let live: HashSet<&str> = instances.iter().map(|i| i.id.as_str()).collect();
                let terminated: Vec<(String, u32)> = shared
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .filter(|(id, _)| seen.contains(*id) && !live.contains(id.as_str()))
                    .map(|(id, pid)| (id.clone(), *pid))
                    .collect();
                for (id, pid) in terminated {
                    // A script that powered itself off is exiting: its instance is going anyway.
                    let shutdown_log = config.run_dir.join("workers").join(&id).join("shutdown.log");
                    let powered_off = std::fs::read_to_string(shutdown_log).is_ok_and(|log| log.contains("power off"));
                    if !powered_off
                        && shared
                            .shut_down
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id.clone())
                    {
                        progress(
                            &config,
                            &format!("worker {id} was terminated: shutting its script down"),
                        );
                        signal_group(pid, libc::SIGTERM);
                    }
                }
                for instance in instances {
                    if seen.insert(instance.id.clone()) {
                        tokio::spawn(run_instance(config.clone(), shared.clone(), instance));
                    }
                }
            }
            Err(error) => {
                // Printed once per distinct error: moto stopping at the end is not news.
                if error.0 != last_error && !shared.stopping.load(Ordering::SeqCst) {
                    eprintln!("local worker: {error}");
                    last_error = error.0;
                }
            }
        }
        tokio::time::sleep(config.poll_interval).await;
    }
}

async fn live_instances(ec2: &aws_sdk_ec2::Client) -> Result<Vec<NewInstance>, StackError> {
    let filter = Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .build();
    let output = ec2
        .describe_instances()
        .filters(filter)
        .send()
        .await
        .context("EC2 DescribeInstances")?;
    Ok(output
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|instance| {
            let tag = |key: &str| {
                instance
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
                    .map(str::to_string)
            };
            // Only the pipeline's workers boot into a job; any other instance just runs.
            Some(NewInstance {
                id: instance.instance_id()?.to_string(),
                job: tag("JobKind")?,
                distro: tag("Distro"),
                version: tag("Version"),
                spot: instance.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
            })
        })
        .collect())
}

fn progress(config: &WorkerConfig, line: &str) {
    if config.verbose {
        eprintln!("{line}");
    }
    if let Ok(mut log) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.run_dir.join("workers.log"))
    {
        let _ = writeln!(log, "{line}");
    }
}

async fn run_instance(config: Arc<WorkerConfig>, shared: Arc<Shared>, instance: NewInstance) {
    let what = match &instance.distro {
        Some(distro) => format!("worker {} ({} {distro})", instance.id, instance.job),
        None => format!("worker {} ({})", instance.id, instance.job),
    };
    let sandbox = config.run_dir.join("workers").join(&instance.id);
    let started = Instant::now();
    progress(&config, &format!("{what} started in {}", sandbox.display()));
    if instance.spot
        && let (Some(version), Some(distro)) = (&instance.version, &instance.distro)
    {
        let knob = interruption_knob(&config.failing_builds_dir, version, distro);
        tokio::spawn(interrupt_when_asked(
            config.clone(),
            shared.clone(),
            instance.id.clone(),
            knob,
        ));
    }
    let exit_code = match prepare_and_run(&config, &shared, &instance, &sandbox).await {
        Ok(code) => code,
        Err(error) => {
            progress(&config, &format!("{what}: {error}"));
            None
        }
    };
    let after_marker_knob = after_marker_knob_of(&config, &instance, exit_code);
    if !shared.stopping.load(Ordering::SeqCst) {
        let ended = match &after_marker_knob {
            Some(knob) => {
                progress(
                    &config,
                    &format!(
                        "{what}: interrupted after its success marker as EC2 reclaims spot capacity ({})",
                        knob.display()
                    ),
                );
                reclaim(&config.ec2, &instance.id).await
            }
            None => terminate_unless_ended(&config.ec2, &instance.id).await,
        };
        if let Err(error) = ended {
            progress(&config, &format!("{what}: {error}"));
        }
    }
    if let Some(knob) = after_marker_knob
        && let Err(error) = std::fs::remove_file(&knob)
    {
        progress(&config, &format!("{what}: removing {}: {error}", knob.display()));
    }
    let duration = started.elapsed();
    let outcome = exit_code.map_or("did not run to an exit".to_string(), |code| format!("exit {code}"));
    progress(
        &config,
        &format!("{what} finished: {outcome} in {:.1} s", duration.as_secs_f64()),
    );
    shared.runs.lock().unwrap_or_else(|p| p.into_inner()).push(WorkerRun {
        instance: instance.id,
        job: instance.job,
        distro: instance.distro,
        exit_code,
        duration,
        sandbox,
    });
}

/// The after-marker interruption knob of `instance`, when it is set and applies: a spot build
/// whose script succeeded (so wrote its success marker).
fn after_marker_knob_of(config: &WorkerConfig, instance: &NewInstance, exit_code: Option<i32>) -> Option<PathBuf> {
    let (Some(version), Some(distro)) = (&instance.version, &instance.distro) else {
        return None;
    };
    let knob = interruption_after_marker_knob(&config.failing_builds_dir, version, distro);
    (instance.spot && exit_code == Some(0) && knob.exists()).then_some(knob)
}

fn create_dir(path: &Path) -> Result<(), StackError> {
    std::fs::create_dir_all(path).context(format!("create {}", path.display()))
}

fn write_executable(path: &Path, text: &str) -> Result<(), StackError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).context(format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).context(format!("chmod {}", path.display()))
}

async fn user_data(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<String, StackError> {
    let attribute = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .context(format!("EC2 DescribeInstanceAttribute userData of {id}"))?;
    let encoded = attribute
        .user_data()
        .and_then(|v| v.value())
        .ok_or_else(|| StackError(format!("{id} has no user data")))?;
    pipeline_testing::decode_user_data(encoded).map_err(|e| StackError(format!("{id}: {e}")))
}

async fn prepare_and_run(
    config: &WorkerConfig,
    shared: &Arc<Shared>,
    instance: &NewInstance,
    sandbox: &Path,
) -> Result<Option<i32>, StackError> {
    let script = user_data(&config.ec2, &instance.id).await?;
    for dir in ["bin", "home", "work", "tmp", "out", "systemd"] {
        create_dir(&sandbox.join(dir))?;
    }
    let script_path = sandbox.join("user-data.sh");
    std::fs::write(&script_path, &script).context(format!("write {}", script_path.display()))?;
    write_executable(&sandbox.join("bin/shutdown"), SHUTDOWN_STUB)?;
    write_executable(&sandbox.join("bin/systemctl"), SYSTEMCTL_STUB)?;
    write_executable(&sandbox.join("bin/apt-get"), APT_GET_STUB)?;
    write_executable(&sandbox.join("bin/gpg"), GPG_STUB)?;
    let mut gnupg = sandbox.join("gnupg");
    let gnupg_is_temporary = gnupg.as_os_str().len() > MAX_GNUPGHOME_LENGTH;
    if gnupg_is_temporary {
        gnupg = std::env::temp_dir().join(format!("local-stack-gnupg-{}", instance.id));
    }
    create_dir(&gnupg)?;
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .context(format!("chmod {}", gnupg.display()))?;

    let log_path = sandbox.join("worker.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .context(format!("open {}", log_path.display()))?;
    let mut command = Command::new("bash");
    command
        .arg(&script_path)
        .current_dir(sandbox)
        .env_clear()
        .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PATH", format!("{}:{}", sandbox.join("bin").display(), config.path))
        .env("INSTANCE_ID", &instance.id)
        .env("LOCAL_WORKER_DIR", sandbox)
        .env("HOME", sandbox.join("home"))
        .env("GNUPGHOME", &gnupg)
        .env("TMPDIR", sandbox.join("tmp"))
        .env("WORK_DIR", sandbox.join("work"))
        .env("PACKAGING_DIR", sandbox.join("packaging"))
        .env("OUT_DIR", sandbox.join("out"))
        .env("WORKER_LOG", &log_path)
        .env("SYSTEMD_UNIT_DIR", sandbox.join("systemd"))
        .env("INSTALL_PACKAGES", "false")
        // Local jobs take seconds: their logs go up while they run, as real ones do every minute.
        .env("LOG_UPLOAD_SECONDS", LOG_UPLOAD_SECONDS)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicate the worker log handle")?)
        .stderr(log);
    let mut process = GroupProcess::spawn(&format!("the user data of {}", instance.id), command)?;
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(instance.id.clone(), process.pid());
    let status = tokio::task::spawn_blocking(move || process.wait())
        .await
        .map_err(|error| StackError(format!("waiting for {}: {error}", instance.id)))?
        .context(format!("waiting for the user data of {}", instance.id));
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&instance.id);
    // gpg-agent and dirmngr started by the script would otherwise outlive it.
    let _ = Command::new("gpgconf")
        .args(["--kill", "all"])
        .env("GNUPGHOME", &gnupg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if gnupg_is_temporary {
        let _ = std::fs::remove_dir_all(&gnupg);
    }
    Ok(status?.code())
}

/// Interrupts spot instance `id` as EC2 reclaims spot capacity once `knob` exists while its
/// script runs; returns when the script has finished without it.
async fn interrupt_when_asked(config: Arc<WorkerConfig>, shared: Arc<Shared>, id: String, knob: PathBuf) {
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let pid = shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied();
        let finished = shared
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|run| run.instance == id);
        if finished {
            return;
        }
        if let Some(pid) = pid
            && knob.exists()
        {
            tokio::time::sleep(INTERRUPTION_DELAY).await;
            match reclaim(&config.ec2, &id).await {
                Ok(()) => {
                    shared
                        .shut_down
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.clone());
                    signal_group(pid, libc::SIGTERM);
                    progress(
                        &config,
                        &format!(
                            "worker {id}: interrupted as EC2 reclaims spot capacity ({})",
                            knob.display()
                        ),
                    );
                }
                Err(error) => progress(&config, &format!("worker {id}: interrupting it failed: {error}")),
            }
            if let Err(error) = std::fs::remove_file(&knob) {
                progress(&config, &format!("worker {id}: removing {}: {error}", knob.display()));
            }
            return;
        }
        tokio::time::sleep(config.poll_interval).await;
    }
}

/// Tags `id` as interrupted and terminates it: moto's termination then carries EC2's reason for
/// a spot interruption.
async fn reclaim(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), StackError> {
    ec2.create_tags()
        .resources(id)
        .tags(Tag::builder().key(INTERRUPTION_TAG).value("spot").build())
        .send()
        .await
        .context(format!("EC2 CreateTags {id}"))?;
    terminate(ec2, id).await
}

/// Terminates `id` in moto.
async fn terminate(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), StackError> {
    ec2.terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .context(format!("EC2 TerminateInstances {id}"))?;
    Ok(())
}

/// Terminates `id` in moto unless it is already shutting down or terminated (from outside: a
/// cleanup, a stop, a spot reclaim).
async fn terminate_unless_ended(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), StackError> {
    let described = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .context(format!("EC2 DescribeInstances {id}"))?;
    let state = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
        .unwrap_or_default();
    if state == "shutting-down" || state == "terminated" {
        return Ok(());
    }
    terminate(ec2, id).await
}
