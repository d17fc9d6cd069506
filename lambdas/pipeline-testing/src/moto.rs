//! The one way tests start moto: a server on a free port of 127.0.0.1, in its own process group
//! owned by the test process, ready when its control API answers. Lambda crates' tests share
//! plain `moto_server` (`MotoServer::shared`); the local stack starts `tests/moto/server.py`
//! (moto with the CloudFormation patches) through `MotoServer::start`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;

use crate::process::GroupProcess;
use crate::{HarnessError, free_port, http, sdk_config_for};

/// Plain moto answers within a second or two; server.py imports all of moto's CloudFormation
/// models before it listens, a few seconds on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A moto server started by this process; stopped by `stop()`, when dropped, or when this
/// process ends.
pub struct MotoServer {
    process: Mutex<GroupProcess>,
    port: u16,
    endpoint: String,
}

impl MotoServer {
    /// Plain `moto_server`, shared by every test of this process and started on first use
    /// (`MOTO_SERVER` may name the executable; by default the workspace's `.venv` one).
    pub fn shared() -> &'static MotoServer {
        static SERVER: OnceLock<MotoServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let log = std::env::temp_dir().join(format!("moto-server-{}.log", std::process::id()));
            MotoServer::start("moto_server", Command::new(moto_executable()), &log).unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// A second plain `moto_server` of this process, with Step Functions executing the machines'
    /// ASL (execute mode, which must be on before the first state machine is created; the shared
    /// server's tests expect executions that stay where they were started).
    pub fn shared_executing() -> &'static MotoServer {
        static SERVER: OnceLock<MotoServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let log = std::env::temp_dir().join(format!("moto-server-executing-{}.log", std::process::id()));
            let server = MotoServer::start("moto_server (execute mode)", Command::new(moto_executable()), &log)
                .unwrap_or_else(|e| panic!("{e}"));
            server.enable_execute_mode().unwrap_or_else(|e| panic!("{e}"));
            server
        })
    }

    /// Starts `command` (a `moto_server`-compatible command line, without host and port) on a
    /// free port with its output in `log`, and waits until it answers. The error names the
    /// server and quotes the end of its log.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Result<MotoServer, HarnessError> {
        let port = free_port();
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(|e| HarnessError(format!("create {}: {e}", parent.display())))?;
        }
        let file = std::fs::File::create(log).map_err(|e| HarnessError(format!("create {}: {e}", log.display())))?;
        let duplicate = file
            .try_clone()
            .map_err(|e| HarnessError(format!("duplicate the handle of {}: {e}", log.display())))?;
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(duplicate)
            .stderr(file);
        let mut process = GroupProcess::spawn(name, command)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !http::answers(port, "/moto-api/data.json") {
            let failure = if let Some(status) = process.exited() {
                format!("exited ({status})")
            } else if Instant::now() > deadline {
                format!("did not answer within {} s", START_TIMEOUT.as_secs())
            } else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            process.stop();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            return Err(HarnessError(format!(
                "{name} on port {port} {failure}; the end of {}:\n{}",
                log.display(),
                lines[lines.len().saturating_sub(30)..].join("\n")
            )));
        }
        Ok(MotoServer {
            process: Mutex::new(process),
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SDK configuration for this server: fixed test credentials, region us-east-1.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }

    /// A request to moto's own API (`/moto-api/...`); its body, or an error unless it answers 2xx.
    pub fn control(&self, method: &str, path: &str, body: &str) -> Result<String, HarnessError> {
        let response = http::request(self.port, method, path, body.as_bytes(), Duration::from_secs(30))
            .map_err(|e| HarnessError(format!("moto {method} {path}: {e}")))?;
        if !(200..300).contains(&response.status) {
            return Err(HarnessError(format!(
                "moto {method} {path}: HTTP {}: {}",
                response.status,
                response.text()
            )));
        }
        Ok(response.text())
    }

    /// Step Functions runs the machines' ASL. It keeps a store of its own, so this must come
    /// before any state machine is created.
    pub fn enable_execute_mode(&self) -> Result<(), HarnessError> {
        self.control(
            "POST",
            "/moto-api/config",
            r#"{"stepfunctions":{"execute_state_machine":true}}"#,
        )
        .map(drop)
    }

    /// Stops the server's process group; repeating it does nothing.
    pub fn stop(&self) {
        let mut process = self.process.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if process.exited().is_none() {
            process.stop();
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn moto_executable() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    panic!(
        "moto_server not found at {}: run the tests with bin/test (it installs moto into .venv), \
         or set MOTO_SERVER to a moto_server executable",
        venv.display()
    );
}
