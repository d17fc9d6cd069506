//! Child processes of a test run (moto, the local stack's functions and workers), each in its
//! own process group so that stopping one stops everything it started (a worker's script runs
//! its tools as grandchildren), and none outliving the process that started it.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::HarnessError;

/// How long a process group gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// A started process, leader of its own process group.
pub struct GroupProcess {
    pub name: String,
    child: Child,
}

impl GroupProcess {
    /// Starts `command` as the leader of a new process group.
    pub fn spawn(name: &str, command: Command) -> Result<GroupProcess, HarnessError> {
        let child = spawn_owned(command).map_err(|error| HarnessError(format!("could not start {name}: {error}")))?;
        Ok(GroupProcess {
            name: name.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (its exit status then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Blocks until the process exits.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait()
    }

    /// SIGTERM to the whole group, SIGKILL after a grace period; then reaps the leader.
    pub fn stop(&mut self) {
        signal_group(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                // The leader is gone; what else of its group still runs gets no more grace.
                signal_group(self.pid(), libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Why a started server is not ready (`GroupProcess::wait_until_ready`).
pub struct NotReady {
    /// Whether it exited (it may be worth starting again) rather than running out of time.
    pub exited: bool,
    pub error: HarnessError,
}

impl GroupProcess {
    /// Starts `command` as the leader of a new process group with no input and its output and
    /// errors in `log` (created anew, with its directory).
    pub fn spawn_logged(name: &str, mut command: Command, log: &Path) -> Result<GroupProcess, HarnessError> {
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(|e| HarnessError(format!("create {}: {e}", parent.display())))?;
        }
        let file = std::fs::File::create(log).map_err(|e| HarnessError(format!("create {}: {e}", log.display())))?;
        let duplicate = file
            .try_clone()
            .map_err(|e| HarnessError(format!("duplicate the handle of {}: {e}", log.display())))?;
        command.stdin(Stdio::null()).stdout(duplicate).stderr(file);
        GroupProcess::spawn(name, command)
    }

    /// Waits until `ready()` holds, asking every `every`. If the process exits first, or
    /// `timeout` passes, it is stopped and the error names `what` and quotes the end of `log`.
    pub fn wait_until_ready(
        &mut self,
        what: &str,
        ready: impl Fn() -> bool,
        every: Duration,
        timeout: Duration,
        log: &Path,
    ) -> Result<(), NotReady> {
        let deadline = Instant::now() + timeout;
        while !ready() {
            let (exited, failure) = if let Some(status) = self.exited() {
                (true, format!("exited ({status})"))
            } else if Instant::now() > deadline {
                (false, format!("was not ready within {} s", timeout.as_secs()))
            } else {
                std::thread::sleep(every);
                continue;
            };
            self.stop();
            let error = HarnessError(format!(
                "{what} {failure}; the end of {}:\n{}",
                log.display(),
                last_lines_of(log, 30)
            ));
            return Err(NotReady { exited, error });
        }
        Ok(())
    }
}

/// The last `count` lines of `text`.
pub fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The last `count` lines of the file at `path`; empty when it cannot be read.
pub fn last_lines_of(path: &Path, count: usize) -> String {
    last_lines(&std::fs::read_to_string(path).unwrap_or_default(), count)
}

/// Runs `program` with `args` and `stdin` to its end; its standard output. A program that
/// cannot start or fails panics, naming it and quoting its standard error.
pub fn stdout_of(program: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .unwrap_or_else(|e| panic!("write {program}'s input: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap_or_else(|e| panic!("{program}'s output is not UTF-8: {e}"))
}

/// Sends `signal` to the process group led by `pid` (nothing if it is gone).
pub fn signal_group(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a negative pid only signals that process group.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` in a new process group, with SIGTERM on the death of the process that
/// started the stack. PR_SET_PDEATHSIG fires when the spawning *thread* ends, and tokio ends
/// idle blocking threads, so every spawn happens on one thread that lives as long as the process.
fn spawn_owned(command: Command) -> std::io::Result<Child> {
    static OWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let owner = OWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("test-process-owner".into())
            .spawn(move || {
                for (mut command, reply) in receiver {
                    command.process_group(0);
                    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                    unsafe {
                        command.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                            Ok(())
                        });
                    }
                    let _ = reply.send(command.spawn());
                }
                // The sender lives in a static, so the loop never ends; parking keeps the
                // thread (and with it PDEATHSIG's trigger) alive should that ever change.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the process owner thread");
        Mutex::new(sender)
    });
    let (reply, answer) = mpsc::channel();
    owner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply))
        .map_err(|_| std::io::Error::other("the process owner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the process owner thread is gone"))?
}
