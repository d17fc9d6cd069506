//! The one way tests start moto: a server on a free port of 127.0.0.1, in its own process group
//! owned by the test process, ready when its control API answers. Lambda crates' tests share
//! plain `moto_server` (`MotoServer::shared`); the local stack starts `tests/moto/server.py`
//! (moto with the CloudFormation patches) through `MotoServer::start`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;

use crate::process::{GroupProcess, NotReady};
use crate::{HarnessError, free_port, http, sdk_config_for};

/// Plain moto answers within a second or two; server.py imports all of moto's CloudFormation
/// models before it listens, a few seconds on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often `MotoServer::start` tries a new port for a server that exited before it answered.
const START_ATTEMPTS: usize = 3;

/// Whether moto answers on `port`: its own API's data document, 200. Another server that took
/// the port answers something else, or nothing.
fn moto_answers(port: u16) -> bool {
    matches!(
        http::request(port, "GET", "/moto-api/data.json", b"", Duration::from_secs(5)),
        Ok(response) if response.status == 200
    )
}

/// A new command with `command`'s program, arguments, environment and working directory
/// (`Command` cannot be cloned, and a spawned one cannot be run again).
fn copy_of(command: &Command) -> Command {
    let mut copy = Command::new(command.get_program());
    copy.args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => copy.env(key, value),
            None => copy.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        copy.current_dir(dir);
    }
    copy
}

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
        SERVER.get_or_init(|| MotoServer::start_plain("shared").unwrap_or_else(|e| panic!("{e}")))
    }

    /// A plain `moto_server` of its own (named and its log named after `label`): what `shared`
    /// and `shared_executing` start, and what a test uses whose writes must not show in another
    /// test's view of the shared server (the hostile corpus checks that nothing at all changed
    /// in it).
    pub fn start_plain(label: &str) -> Result<MotoServer, HarnessError> {
        let log = std::env::temp_dir().join(format!("moto-server-{}-{label}.log", std::process::id()));
        MotoServer::start(&format!("moto_server ({label})"), Command::new(moto_executable()), &log)
    }

    /// A second plain `moto_server` of this process, with Step Functions executing the machines'
    /// ASL (execute mode, which must be on before the first state machine is created; the shared
    /// server's tests expect executions that stay where they were started).
    pub fn shared_executing() -> &'static MotoServer {
        static SERVER: OnceLock<MotoServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let server = MotoServer::start_plain("execute-mode").unwrap_or_else(|e| panic!("{e}"));
            server.enable_execute_mode().unwrap_or_else(|e| panic!("{e}"));
            server
        })
    }

    /// Starts `command` (a `moto_server`-compatible command line, without host and port) on a
    /// free port with its output in `log`, and waits until it answers. A port is free only when
    /// `free_port` picks it: another process of the test run may bind it first, and moto then
    /// exits (address in use), so a server that exits before it answers is started again on
    /// another port, up to `START_ATTEMPTS` times. The error names the server and quotes the
    /// end of its log.
    pub fn start(name: &str, command: Command, log: &Path) -> Result<MotoServer, HarnessError> {
        let mut attempt = 1;
        loop {
            match MotoServer::start_on_free_port(name, copy_of(&command), log) {
                Err(NotReady { exited: true, .. }) if attempt < START_ATTEMPTS => attempt += 1,
                Err(NotReady { error, .. }) => return Err(error),
                Ok(server) => return Ok(server),
            }
        }
    }

    fn start_on_free_port(name: &str, mut command: Command, log: &Path) -> Result<MotoServer, NotReady> {
        let port = free_port();
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let failed = |error| NotReady { exited: false, error };
        let mut process = GroupProcess::spawn_logged(name, command, log).map_err(failed)?;
        process.wait_until_ready(
            &format!("{name} on port {port}"),
            || moto_answers(port),
            Duration::from_millis(100),
            START_TIMEOUT,
            log,
        )?;
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn a_server_that_exits_before_it_answers_is_started_again_on_another_port() {
        let dir = std::env::temp_dir().join(crate::unique_name("moto-restart"));
        std::fs::create_dir_all(&dir).unwrap();
        let tried = dir.join("tried");
        // Exits at once the first time, as moto does when its port was taken; then is moto.
        let mut command = Command::new("bash");
        command
            .args([
                "-c",
                r#"[ -e "$TRIED" ] || { touch "$TRIED"; exit 98; }; exec "$0" "$@""#,
            ])
            .arg(moto_executable())
            .env("TRIED", &tried);
        let server = MotoServer::start("moto (exits once)", command, &dir.join("moto.log")).unwrap();
        assert!(tried.exists(), "the first start ran and exited");
        assert!(moto_answers(server.port()));
        server.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_server_on_the_port_is_not_moto() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let body = r#"{"errorType":"InvalidRequest","errorMessage":"no such Runtime API endpoint"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        assert!(http::answers(port, "/moto-api/data.json"), "it answers HTTP");
        assert!(!moto_answers(port), "but it is not moto");
    }
}
