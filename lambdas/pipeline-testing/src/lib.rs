//! Test support: a real moto server (the AWS API emulator from PyPI) on 127.0.0.1, and SDK
//! configuration pointed at it, so integration tests exercise the real `aws-sdk-*` clients over
//! HTTP. `bin/test` installs moto into the workspace's `.venv`; `MOTO_SERVER` may name another
//! `moto_server` executable.
//!
//! One server serves a whole test binary; tests stay apart by using unique resource names
//! (`unique_name`) and only the instances they launched themselves.

pub mod cloudfront;
pub mod http;
pub mod mocks;
pub mod sfn;
pub mod workers;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// A moto server started for this test process.
pub struct MotoServer {
    endpoint: String,
    port: u16,
}

impl MotoServer {
    /// The server shared by every test of this process, started on first use.
    pub fn shared() -> &'static MotoServer {
        static SERVER: OnceLock<MotoServer> = OnceLock::new();
        SERVER.get_or_init(MotoServer::start)
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

    fn start() -> MotoServer {
        let executable = moto_executable();
        let port = free_port();
        let log_path = std::env::temp_dir().join(format!("moto-server-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("create the moto server log file");
        let mut command = Command::new(&executable);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        // The server must not outlive the test process, whichever way that process ends.
        // PR_SET_PDEATHSIG fires when the spawning *thread* exits, so spawn from a thread that
        // lives as long as the process.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("moto-server-owner".into())
            .spawn(move || {
                // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                unsafe {
                    command.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                        Ok(())
                    });
                }
                let started = command.spawn().map(|child| child.id());
                sender.send(started).expect("report the moto server start");
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the moto server owner thread");
        let pid = receiver
            .recv()
            .expect("moto server owner thread")
            .unwrap_or_else(|error| panic!("could not start {}: {error}", executable.display()));
        wait_until_ready(port, pid, &log_path);
        MotoServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    /// A raw HTTP request to moto's own control API (`/moto-api/...`); returns status and body.
    pub fn control(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http_request(self.port, method, path, body)
    }
}

/// SDK configuration for an emulator at `endpoint`.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "pipeline-testing"))
        .load()
        .await
}

/// A name no other test of this run uses: lowercase, digits and dashes (valid for buckets).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
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

/// A port of 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("find a free port on 127.0.0.1")
}

fn wait_until_ready(port: u16, pid: u32, log_path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http_request(port, "GET", "/moto-api/data.json", "").0 == 200
        {
            return;
        }
        if std::fs::metadata(format!("/proc/{pid}")).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    panic!("moto server (pid {pid}) did not become ready on port {port}; its log:\n{log}");
}

fn http_request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let attempt = || -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    attempt().unwrap_or((0, String::new()))
}

/// Creates a bucket and returns its (unique) name.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    let bucket = unique_name(prefix);
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create a test bucket");
    bucket
}

/// Launches `count` instances in the emulator and returns their IDs.
pub async fn launch_instances(ec2: &aws_sdk_ec2::Client, count: i32) -> Vec<String> {
    let output = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(count)
        .max_count(count)
        .send()
        .await
        .expect("launch test instances");
    output
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

/// Current EC2 state name of one instance.
pub async fn instance_state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let output = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe a test instance");
    output
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
        .expect("the instance is known")
}

/// SDK configuration for an endpoint where nothing listens, with retries off: a handler that
/// succeeds or fails with a validation error against it provably made no AWS call.
pub async fn unreachable_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .credentials_provider(Credentials::new("testing", "testing", None, None, "pipeline-testing"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}
