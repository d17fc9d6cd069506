//! The AWS CLI of the workspace's `.venv` for scripts that tests run (the local stack's workers,
//! the repository update's tests), started from a process that has already imported it.
//!
//! Each `aws` command costs about half a CPU-second before it sends anything, nearly all of it
//! Python importing awscli and botocore; the scripts run hundreds of them per test. The server
//! (`tests/aws-cli/server.py`) imports the CLI once and forks for each command; `aws` in
//! `tests/aws-cli/bin` (first on the script's PATH) hands it the command's arguments,
//! environment, working directory, umask and standard streams, and exits as the run does. The
//! CLI code that runs is `.venv/bin/aws`'s, against the same endpoint; only its start is shared.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::HarnessError;
use crate::process::GroupProcess;

/// Importing awscli takes well under a second; a loaded machine gets a generous margin.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The variable that tells `tests/aws-cli/bin/aws` where the server listens.
pub const SOCKET_VARIABLE: &str = "LOCAL_AWS_CLI_SOCKET";

/// A running server of the AWS CLI, owned by this test process.
pub struct AwsCliServer {
    process: Mutex<GroupProcess>,
    socket: PathBuf,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl AwsCliServer {
    /// The server every script of this process uses, started on first use. Its socket and log
    /// are in the temporary directory (a socket path has at most 107 bytes).
    pub fn shared() -> &'static AwsCliServer {
        static SERVER: OnceLock<AwsCliServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("aws-cli-server-{}", std::process::id()));
            AwsCliServer::start(&dir).unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// Starts a server in `dir` (its socket, its log, and the empty HOME it imports the CLI
    /// with) and waits until it accepts connections. The error quotes the end of its log.
    pub fn start(dir: &Path) -> Result<AwsCliServer, HarnessError> {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).map_err(|e| HarnessError(format!("create {}: {e}", home.display())))?;
        let socket = dir.join("socket");
        let _ = std::fs::remove_file(&socket);
        let log = dir.join("server.log");
        let root = workspace_root();
        let mut command = Command::new(root.join(".venv/bin/python"));
        command
            .arg(root.join("tests/aws-cli/server.py"))
            .arg(&socket)
            .env("HOME", &home);
        let mut process = GroupProcess::spawn_logged("the AWS CLI server", command, &log)?;
        process
            .wait_until_ready(
                &format!("the AWS CLI server on {}", socket.display()),
                || UnixStream::connect(&socket).is_ok(),
                Duration::from_millis(50),
                START_TIMEOUT,
                &log,
            )
            .map_err(|not_ready| not_ready.error)?;
        Ok(AwsCliServer {
            process: Mutex::new(process),
            socket,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `path` with the server's `aws` before everything in it.
    pub fn path_before(&self, path: &str) -> String {
        format!("{}:{path}", workspace_root().join("tests/aws-cli/bin").display())
    }

    /// An `aws` command run through this server, for a test's own calls (its arguments and
    /// environment are the caller's to add): `.venv/bin/aws`'s answers, without its imports.
    pub fn aws(&self) -> Command {
        let mut command = Command::new(workspace_root().join("tests/aws-cli/bin/aws"));
        command.env(SOCKET_VARIABLE, &self.socket);
        command
    }

    /// Makes `command` run its `aws` commands through this server: PATH as `path` with the
    /// server's `aws` first, and the socket named.
    pub fn configure(&self, command: &mut Command, path: &str) {
        command
            .env("PATH", self.path_before(path))
            .env(SOCKET_VARIABLE, &self.socket);
    }

    /// Stops the server; repeating it does nothing.
    pub fn stop(&self) {
        let mut process = self.process.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if process.exited().is_none() {
            process.stop();
        }
    }
}

impl Drop for AwsCliServer {
    fn drop(&mut self) {
        self.stop();
    }
}
