//! `LocalStack`: starting, using and stopping the local stack.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use serde_json::Value;

use crate::deploy::{self, DeployedStack, MotoServer};
use crate::events::{self, EventDelivery};
use crate::fixtures::RELEASE_BRANCH;
use crate::lambda_service::{FunctionSpec, LambdaService, ServiceConfig};
use crate::machines::REGION;
use crate::resources::{self, LocalResources};
use crate::worker::{LocalWorker, WorkerConfig, WorkerRun};
use pipeline_testing::aws_cli::{self, AwsCliServer};
use pipeline_testing::http;
use pipeline_testing::process::last_lines_of;

use crate::{Context, StackError};

/// Any AMI ID passes moto; this one only has to have the shape the Lambdas validate.
const WORKER_AMI: &str = "ami-0abcdef1234567890";

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where logs, worker sandboxes and fixtures go; default `target/local-stack/<run>/`.
    pub run_dir: Option<PathBuf>,
    /// How often the local worker asks moto for new instances.
    pub poll_interval: Duration,
    /// Print progress (stack start, every worker start and finish) to stderr.
    pub verbose: bool,
    /// Build the workspace's binaries first (the functions run from `target/debug/`).
    pub build: bool,
    /// Run the functions' release builds (`target/release/`, as deployed but for the
    /// architecture) instead; `build` then builds only those.
    pub release: bool,
    /// Fault injection: machines deployed with a shorter `TimeoutSeconds` (name → seconds), so
    /// that an execution times out within a test. Empty: the definitions' own limits.
    pub time_limits: BTreeMap<String, u64>,
    /// The stack's scenario spends most of its time waiting for a limit (a poll limit, a time
    /// limit) with a worker that never finishes: it takes one of `WAITING_STACKS_AT_ONCE` turns
    /// instead of a busy stack's, so that it neither waits behind busy stacks nor holds one of
    /// their turns while it idles.
    pub mostly_waits: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            run_dir: None,
            poll_interval: Duration::from_millis(500),
            verbose: true,
            build: true,
            release: false,
            time_limits: BTreeMap::new(),
            mostly_waits: false,
        }
    }
}

/// The names and values the stack set up, as the Lambdas and workers see them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub downloads_bucket: String,
    pub scratch_bucket: String,
    pub nodist_bucket: String,
    /// Holds `<branch>/CURRENT_TARGETS`, served over plain HTTP (`CURRENT_TARGETS_URL`).
    pub packaging_bucket: String,
    pub signing_key_secret_id: String,
    /// Fingerprint of the run's throwaway signing key.
    pub signing_key_id: String,
    /// The signing key's public half as a binary keyring, for apt's `signed-by=`.
    pub public_keyring: PathBuf,
    /// The same, ASCII-armored.
    pub public_key: PathBuf,
    pub cloudfront_distribution_id: String,
    pub packaging_repo_url: String,
    pub staging_repo_url: String,
    pub public_repo_url: String,
    /// The packaging repository's release branch (besides `master`).
    pub release_branch: String,
    /// A file named `<distro>` or `<version>_<distro>` here makes that build fail;
    /// `<version>_<distro>.hang` makes it hang; `<version>_<distro>.interrupt` makes its spot
    /// worker be interrupted (`LocalStack::interrupt_spot_build_of`).
    pub failing_builds_dir: PathBuf,
}

/// What a Lambda invocation answered.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The function's output, or its error document (`errorType`, `errorMessage`).
    pub payload: Value,
    /// `Unhandled` when the function failed (the `X-Amz-Function-Error` header).
    pub function_error: Option<String>,
}

/// The running local stack. Stopped by `stop()` or when dropped.
pub struct LocalStack {
    run_dir: PathBuf,
    sdk_config: SdkConfig,
    settings: Settings,
    /// What `infra/template.yaml` deployed.
    pub(crate) deployed: DeployedStack,
    /// Machine name → ARN: the template's, and any registered from other definitions.
    pub(crate) machines: BTreeMap<String, String>,
    worker: Option<LocalWorker>,
    events: Option<EventDelivery>,
    lambdas: Option<LambdaService>,
    moto: Option<MotoServer>,
    pub(crate) verbose: bool,
    /// This stack's turn among the process's stacks (`stack_turns`); given back after `stop`.
    _turn: tokio::sync::SemaphorePermit<'static>,
}

/// How many local stacks one process runs at once unless `LOCAL_STACKS_AT_ONCE` says otherwise.
/// Each runs its own moto, Lambda service and workers; a stack mostly waits (on polls, on its
/// workers' tools), so a few share 2 cores well, but many would stretch each other's runs.
pub const DEFAULT_STACKS_AT_ONCE: usize = 5;

/// How many stacks whose scenario mostly waits (`Options::mostly_waits`) run at once, besides
/// the others: each needs little CPU after its first workers, but holds its turn for minutes.
pub const WAITING_STACKS_AT_ONCE: usize = 2;

/// The turns of this process's stacks: `LocalStack::start` waits for one of the busy stacks'
/// turns, or of the waiting stacks' (`mostly_waits`).
fn stack_turns(mostly_waits: bool) -> &'static tokio::sync::Semaphore {
    static BUSY: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    static WAITING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    if mostly_waits {
        return WAITING.get_or_init(|| tokio::sync::Semaphore::new(WAITING_STACKS_AT_ONCE));
    }
    BUSY.get_or_init(|| {
        let at_once = std::env::var("LOCAL_STACKS_AT_ONCE")
            .ok()
            .and_then(|value| value.parse().ok())
            .filter(|&count| count > 0)
            .unwrap_or(DEFAULT_STACKS_AT_ONCE);
        tokio::sync::Semaphore::new(at_once)
    })
}

/// The workspace root (this crate is `tests/` in it).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("..");
    root.canonicalize().unwrap_or(root)
}

/// A binary of the workspace as the stack builds it (`target/debug/<name>`): the functions,
/// and `hhvmctl`.
pub fn workspace_binary(name: &str) -> PathBuf {
    workspace_root().join("target/debug").join(name)
}

/// A function's release build (`target/release/<name>`).
pub fn release_binary(name: &str) -> PathBuf {
    workspace_root().join("target/release").join(name)
}

/// The workspace's crates that are not functions (the test crates and `hhvmctl`), as the
/// `--exclude` arguments of a workspace build.
pub const NOT_FUNCTIONS: [&str; 6] = [
    "--exclude",
    "pipeline-tests",
    "--exclude",
    "pipeline-testing",
    "--exclude",
    "hhvmctl",
];

/// The `cargo` arguments that build the functions' release binaries (`target/release/<name>`).
pub fn release_build() -> Vec<&'static str> {
    [&["build", "--release", "--workspace", "--bins"][..], &NOT_FUNCTIONS].concat()
}

/// The `cargo` arguments that package every function for arm64 Lambda
/// (`target/lambda/<name>/bootstrap.zip`): the command docs/deploy.md gives.
pub fn arm64_package_build() -> Vec<&'static str> {
    let package = [
        "lambda",
        "build",
        "--release",
        "--arm64",
        "--output-format",
        "zip",
        "--workspace",
    ];
    [&package[..], &NOT_FUNCTIONS].concat()
}

/// Fails naming every tool that is missing, and how to get it.
fn check_tools(venv_bin: &Path) -> Result<(), StackError> {
    let mut missing = Vec::new();
    for tool in ["python", "moto_server", "aws"] {
        if !venv_bin.join(tool).exists() {
            missing.push(format!("{tool} (in {})", venv_bin.display()));
        }
    }
    for tool in [
        "cargo", "git", "gpg", "gpgconf", "gpgv", "dpkg-deb", "python3", "bash", "tar",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            missing.push(tool.to_string());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StackError(format!(
            "the local stack needs tools that are missing: {}; bin/setup-tools installs them",
            missing.join(", ")
        )))
    }
}

impl LocalStack {
    /// Starts everything (see docs/local-stack.md for the order) and returns once the Lambdas
    /// and the local worker are ready.
    pub async fn start(options: Options) -> Result<LocalStack, StackError> {
        let turn = stack_turns(options.mostly_waits)
            .acquire()
            .await
            .expect("the stacks' semaphore is never closed");
        let root = workspace_root();
        let venv_bin = root.join(".venv/bin");
        check_tools(&venv_bin)?;
        let run_dir = match &options.run_dir {
            Some(dir) => dir.clone(),
            None => {
                let seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                // Stacks of one test process may start in the same second.
                static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let number = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                root.join("target/local-stack")
                    .join(format!("run-{seconds}-{}-{number}", std::process::id()))
            }
        };
        std::fs::create_dir_all(&run_dir).context(format!("create {}", run_dir.display()))?;
        let run_dir = run_dir
            .canonicalize()
            .context(format!("resolve {}", run_dir.display()))?;
        let say = |line: &str| {
            if options.verbose {
                eprintln!("local-stack: {line}");
            }
        };
        say(&format!("run directory {}", run_dir.display()));
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
        );
        if options.build {
            say("building the workspace's binaries (build.log)");
            let arguments: &[&str] = if options.release {
                &release_build()
            } else {
                &["build", "--workspace", "--bins"]
            };
            build_workspace(&root, &path, arguments, &run_dir.join("build.log"))?;
        }

        // moto's Step Functions engine sends its service calls (Lambda invocations) to
        // localhost:$MOTO_PORT: the Lambda service, which passes everything else back to moto.
        // Bound now, served once the functions start: moto needs the port first, and a port
        // only picked here could be taken by another process of the test run meanwhile.
        let lambda_listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).context("listen on a free port of 127.0.0.1")?;
        let lambda_port = lambda_listener
            .local_addr()
            .context("read the Lambda service's port")?
            .port();
        say("starting moto with the template's resource types (moto.log)");
        let moto = deploy::start_moto(
            &root,
            &run_dir.join("moto.log"),
            &[("MOTO_PORT", lambda_port.to_string())],
        )?;
        // Execute mode uses a store of its own: it must be on before any machine exists.
        moto.enable_execute_mode()?;
        let endpoint = moto.endpoint().to_string();
        say(&format!("moto on {endpoint}"));
        let sdk_config = pipeline_testing::sdk_config_for(&endpoint).await;
        let s3 = pipeline_aws::s3_client(&sdk_config);

        say("creating the fixture repositories, CURRENT_TARGETS, the signing key");
        let local = resources::prepare(&s3, &endpoint, &root, &run_dir).await?;
        say("deploying infra/template.yaml (deploy/)");
        let parameters = template_parameters(&pipeline_aws::ec2_client(&sdk_config), &local).await?;
        let deployed = deploy::deploy_template(
            &endpoint,
            &root,
            &root.join("infra/template.yaml"),
            &parameters,
            &options.time_limits,
            &run_dir.join("deploy"),
        )
        .await?;
        say(&format!(
            "stack {}: {} resources, {} functions, {} state machines",
            deployed.stack_name,
            deployed.resources.len(),
            deployed.functions.len(),
            deployed.state_machines.len()
        ));
        let settings = settings_of(&deployed, &local, &run_dir)?;
        resources::allow_public_reads(&s3, &settings.downloads_bucket).await?;
        resources::publish_public_key(&s3, &settings.downloads_bucket, &settings.public_key).await?;
        put_secret_values(&endpoint, &deployed, &local)?;
        std::fs::create_dir_all(&settings.failing_builds_dir)
            .context(format!("create {}", settings.failing_builds_dir.display()))?;

        say(&format!(
            "starting the {} functions on 127.0.0.1:{lambda_port} (lambdas/)",
            deployed.functions.len()
        ));
        let functions = deployed
            .functions
            .iter()
            .map(|function| FunctionSpec {
                name: function.name.clone(),
                binary: if options.release {
                    release_binary(&function.name)
                } else {
                    workspace_binary(&function.name)
                },
                environment: function.environment.clone().into_iter().collect(),
            })
            .collect();
        let common_environment = [
            ("AWS_ENDPOINT_URL", endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("LOG_FORMAT", "text".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut service = ServiceConfig::new(functions, common_environment, moto.port(), run_dir.join("lambdas"));
        service.listener = Some(lambda_listener);
        let lambdas = LambdaService::start(service).await?;
        let rules = events::execution_rules(&endpoint)?;
        say(&format!(
            "delivering the machines' execution ends to {} rule(s) as EventBridge would (events.log)",
            rules.len()
        ));
        let events = EventDelivery::start(
            aws_sdk_sfn::Client::new(&sdk_config),
            deployed.state_machines.values().cloned().collect(),
            rules,
            lambda_port,
            run_dir.join("events.log"),
            options.poll_interval,
        );

        let mut stack = LocalStack {
            run_dir: run_dir.clone(),
            sdk_config,
            settings,
            machines: deployed.state_machines.clone(),
            deployed,
            worker: None,
            events: Some(events),
            lambdas: Some(lambdas),
            moto: Some(moto),
            verbose: options.verbose,
            _turn: turn,
        };
        say("starting the local EC2 worker (workers.log, workers/<instance>/)");
        stack.worker = Some(LocalWorker::start(WorkerConfig {
            ec2: stack.ec2(),
            failing_builds_dir: stack.settings.failing_builds_dir.clone(),
            run_dir,
            // The workers' `aws` commands are forks of one process that imported the CLI
            // (pipeline_testing::aws_cli): the same CLI, without half a CPU-second of start each.
            path: AwsCliServer::shared().path_before(&path),
            env: stack.worker_environment(),
            poll_interval: options.poll_interval,
            verbose: options.verbose,
        }));
        say("ready");
        Ok(stack)
    }

    /// A request to moto's own API (`/moto-api/...`); fails unless it answers 2xx.
    pub fn moto_control(&self, method: &str, path: &str, body: &str) -> Result<String, StackError> {
        match &self.moto {
            Some(moto) => Ok(moto.control(method, path, body)?),
            None => Err(StackError::new("the stack is stopped")),
        }
    }

    /// Runs the venv's AWS CLI against moto (for services without an SDK crate in the
    /// workspace); returns stdout.
    pub fn aws_cli(&self, args: &[&str]) -> Result<String, StackError> {
        deploy::aws_cli(&self.endpoint(), args)
    }

    /// What a worker's script sees besides its sandbox paths: the AWS CLI pointed at moto, the
    /// local build command and source repository, and the failure knob.
    fn worker_environment(&self) -> Vec<(String, String)> {
        let s = &self.settings;
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("LANG", "C.UTF-8".into()),
            ("BUILD_COMMAND", "bin/build-local-packages".into()),
            ("NIGHTLY_SOURCE_REPO_URL", s.staging_repo_url.clone()),
            ("LOCAL_STACK_FAILING_BUILDS", s.failing_builds_dir.display().to_string()),
            (
                aws_cli::SOCKET_VARIABLE,
                AwsCliServer::shared().socket().display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// moto's endpoint (S3, EC2, Step Functions, …).
    pub fn endpoint(&self) -> String {
        self.moto
            .as_ref()
            .map(|moto| moto.endpoint().to_string())
            .unwrap_or_default()
    }

    /// The Lambda service: the Invoke API as AWS answers it (`AWS_ENDPOINT_URL_LAMBDA`).
    pub fn lambda_endpoint(&self) -> String {
        self.lambdas.as_ref().map(LambdaService::endpoint).unwrap_or_default()
    }

    /// What the template deployed: functions with their environment, machines, outputs.
    pub fn deployed(&self) -> &DeployedStack {
        &self.deployed
    }

    /// Where function `name`'s processes write their output.
    pub fn function_log(&self, name: &str) -> Option<PathBuf> {
        self.lambdas.as_ref().map(|service| service.function_log(name))
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The environment of a client of the stack (the AWS CLI, `hhvmctl`): its endpoints,
    /// credentials and region, by the standard variables.
    pub fn client_environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ENDPOINT_URL_LAMBDA", self.lambda_endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_REGION", REGION.to_string()),
        ]
    }

    /// Lines of `export NAME=value` for a shell that talks to the stack with the AWS CLI.
    pub fn shell_exports(&self) -> String {
        self.client_environment()
            .iter()
            .map(|(k, v)| format!("export {k}={v}\n"))
            .collect()
    }

    /// The deployed function names.
    pub fn functions(&self) -> Vec<String> {
        self.deployed.functions.iter().map(|f| f.name.clone()).collect()
    }

    /// The state machines: name → ARN.
    pub fn machines(&self) -> &BTreeMap<String, String> {
        &self.machines
    }

    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk_config
    }

    /// An S3 client for moto (path-style addressing).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        pipeline_aws::s3_client(&self.sdk_config)
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        pipeline_aws::ec2_client(&self.sdk_config)
    }

    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.sdk_config)
    }

    /// Invokes `function` (a name or ARN) through the Lambda service, as an AWS SDK would.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Invocation, StackError> {
        let port = self.lambdas.as_ref().map(LambdaService::port).unwrap_or_default();
        let path = format!("/2015-03-31/functions/{function}/invocations");
        let body = payload.to_string().into_bytes();
        let response =
            tokio::task::spawn_blocking(move || http::request(port, "POST", &path, &body, Duration::from_secs(900)))
                .await
                .map_err(|error| StackError(format!("invoking {function}: {error}")))?
                .context(format!("invoking {function} through the Lambda service"))?;
        if response.status != 200 {
            return Err(StackError(format!(
                "invoking {function}: HTTP {}: {} (lambdas/ has the functions' side)",
                response.status,
                response.text()
            )));
        }
        let payload = serde_json::from_slice(&response.body)
            .context(format!("the answer of {function} is not JSON: {}", response.text()))?;
        Ok(Invocation {
            payload,
            function_error: response.header("x-amz-function-error").map(str::to_string),
        })
    }

    /// Every worker run that finished so far.
    pub fn worker_runs(&self) -> Vec<WorkerRun> {
        self.worker.as_ref().map(LocalWorker::runs).unwrap_or_default()
    }

    /// The error of a wait for execution `arn` that ran out of time, with the worker runs so far.
    pub(crate) fn still_running(&self, arn: &str, timeout: Duration) -> StackError {
        let runs: Vec<String> = self
            .worker_runs()
            .iter()
            .map(|r| format!("{} {:?}", r.instance, r.exit_code))
            .collect();
        StackError(format!(
            "{arn} still runs after {} s (worker runs: {runs:?})",
            timeout.as_secs()
        ))
    }

    /// Waits until worker runs of `instances` have all finished, or fails after `timeout`.
    pub async fn wait_for_workers(
        &self,
        instances: &[String],
        timeout: Duration,
    ) -> Result<Vec<WorkerRun>, StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            let runs = self.worker_runs();
            let finished: Vec<WorkerRun> = instances
                .iter()
                .filter_map(|id| runs.iter().find(|r| &r.instance == id).cloned())
                .collect();
            if finished.len() == instances.len() {
                return Ok(finished);
            }
            if Instant::now() > deadline {
                let running = self.worker.as_ref().map(LocalWorker::running).unwrap_or_default();
                return Err(StackError(format!(
                    "workers {instances:?} not all finished after {} s; finished: {:?}; running: {running:?}",
                    timeout.as_secs(),
                    finished.iter().map(|r| &r.instance).collect::<Vec<_>>()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Makes every later build for `distro` fail (of `version` only, when given): the local
    /// build command checks for this marker.
    pub fn fail_builds_of(&self, distro: &str, version: Option<&str>) -> Result<(), StackError> {
        let name = match version {
            Some(version) => format!("{version}_{distro}"),
            None => distro.to_string(),
        };
        let path = self.settings.failing_builds_dir.join(name);
        std::fs::write(&path, "").context(format!("write {}", path.display()))
    }

    /// Makes every later build of `version` for `distro` hang until its instance is terminated:
    /// a worker that never finishes.
    pub fn hang_builds_of(&self, distro: &str, version: &str) -> Result<(), StackError> {
        let path = self
            .settings
            .failing_builds_dir
            .join(format!("{version}_{distro}.hang"));
        std::fs::write(&path, "").context(format!("write {}", path.display()))
    }

    /// Makes the next spot build of `version` for `distro` be interrupted, as EC2 reclaims spot
    /// capacity: the build waits while the knob (`<version>_<distro>.interrupt`) exists, and the
    /// local worker, seeing it, tags the instance `LocalStackInterruption=spot` and terminates it
    /// after about a second (moto then reports the state reason of a spot interruption), stops
    /// its script and removes the knob, so the on-demand rebuild that follows builds.
    pub fn interrupt_spot_build_of(&self, version: &str, distro: &str) -> Result<(), StackError> {
        let path = crate::worker::interruption_knob(&self.settings.failing_builds_dir, version, distro);
        std::fs::write(&path, "").context(format!("write {}", path.display()))
    }

    /// Makes the next spot build of `version` for `distro` be interrupted just after it wrote its
    /// success marker: the local worker reclaims the instance as `interrupt_spot_build_of`'s
    /// does, in place of its power-off, and removes the knob
    /// (`<version>_<distro>.interrupt-after-marker`). That build stands: it is not rebuilt.
    pub fn interrupt_spot_build_after_marker_of(&self, version: &str, distro: &str) -> Result<(), StackError> {
        let path = crate::worker::interruption_after_marker_knob(&self.settings.failing_builds_dir, version, distro);
        std::fs::write(&path, "").context(format!("write {}", path.display()))
    }

    /// The local Lambda service the functions run in (`None` once stopped).
    pub fn lambda_service(&self) -> Option<&LambdaService> {
        self.lambdas.as_ref()
    }

    /// Makes the next `count` invocations of `function` fail with `Sandbox.Timedout` after they
    /// have done their work, as a function that ran out of time before answering: a launcher
    /// that timed out after launching.
    pub fn lose_answers_of(&self, function: &str, count: u32) {
        if let Some(service) = &self.lambdas {
            service.lose_answers_of(function, count);
        }
    }

    /// Makes every later repository update of `version` die after its pool upload: the local
    /// worker's gpg refuses to sign the repositories while this marker exists (remove it with
    /// `succeed_updates_of`).
    pub fn fail_updates_of(&self, version: &str) -> Result<(), StackError> {
        let path = self.update_failure_knob(version);
        std::fs::write(&path, "").context(format!("write {}", path.display()))
    }

    pub fn succeed_updates_of(&self, version: &str) -> Result<(), StackError> {
        let path = self.update_failure_knob(version);
        std::fs::remove_file(&path).context(format!("remove {}", path.display()))
    }

    fn update_failure_knob(&self, version: &str) -> PathBuf {
        self.settings
            .failing_builds_dir
            .join(format!("{version}_update-repositories"))
    }

    /// Keys under `prefix` in `bucket`, sorted.
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StackError> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.context(format!("S3 ListObjectsV2 {bucket}/{prefix}"))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        keys.sort();
        Ok(keys)
    }

    /// The bytes of an object.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StackError> {
        let object = self
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .context(format!("S3 GetObject {bucket}/{key}"))?;
        let bytes = object.body.collect().await.context(format!("reading {bucket}/{key}"))?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// The EC2 state name of an instance (`running`, `terminated`, …).
    pub async fn instance_state(&self, id: &str) -> Result<String, StackError> {
        Ok(pipeline_testing::try_instance_state(&self.ec2(), id).await?)
    }

    /// Stops the local worker, then the functions and moto (each process by its own process
    /// group). Logs stay in the run directory. Repeating it does nothing.
    pub fn stop(&mut self) {
        if let Some(events) = self.events.take() {
            events.stop();
        }
        if let Some(worker) = self.worker.take() {
            worker.stop();
        }
        let Some(moto) = self.moto.take() else {
            return;
        };
        if let Some(mut lambdas) = self.lambdas.take() {
            lambdas.stop();
        }
        moto.stop();
        if self.verbose {
            eprintln!("local-stack: stopped; logs in {}", self.run_dir.display());
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The template's parameters for a stack in moto: its default VPC and subnet for the workers,
/// and the local stand-ins for the repositories and the packaging files.
async fn template_parameters(
    ec2: &aws_sdk_ec2::Client,
    local: &LocalResources,
) -> Result<Vec<(String, String)>, StackError> {
    let subnets = ec2.describe_subnets().send().await.context("EC2 DescribeSubnets")?;
    let subnet = subnets
        .subnets()
        .iter()
        .find(|s| s.default_for_az() == Some(true))
        .or_else(|| subnets.subnets().first())
        .ok_or_else(|| StackError::new("moto has no default subnet"))?;
    let (Some(subnet_id), Some(vpc_id)) = (subnet.subnet_id(), subnet.vpc_id()) else {
        return Err(StackError::new("moto's default subnet has no ID or VPC"));
    };
    Ok([
        ("WorkerAmiId", WORKER_AMI.to_string()),
        ("WorkerVpcId", vpc_id.to_string()),
        ("WorkerSubnetId", subnet_id.to_string()),
        ("NodistBucketName", resources::NODIST_BUCKET.to_string()),
        ("CurrentTargetsUrl", local.current_targets_url.clone()),
        ("PackagingRepoUrl", resources::file_url(&local.repositories.packaging)),
        ("StagingRepoUrl", resources::file_url(&local.repositories.staging)),
        ("PublicRepoUrl", resources::file_url(&local.repositories.public)),
        ("SigningKeyId", local.signing_key.fingerprint.clone()),
        ("NightlySourceRefsUrl", local.source_refs_url.clone()),
        // The scenarios publish releases unattended; the release gate is asked for by input.
        ("ReleasesRequireApproval", "false".to_string()),
        // As deployed by default: the builds on spot capacity, so an interruption can be
        // simulated (`interrupt_spot_build_of`).
        ("BinaryPackageMarket", "spot".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect())
}

/// A stack output, or an error naming it.
fn output<'a>(deployed: &'a DeployedStack, name: &str) -> Result<&'a str, StackError> {
    deployed
        .outputs
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| StackError(format!("the deployed stack has no output {name}")))
}

fn settings_of(deployed: &DeployedStack, local: &LocalResources, run_dir: &Path) -> Result<Settings, StackError> {
    Ok(Settings {
        downloads_bucket: output(deployed, "DownloadsBucketName")?.to_string(),
        scratch_bucket: output(deployed, "ScratchBucketName")?.to_string(),
        nodist_bucket: resources::NODIST_BUCKET.into(),
        packaging_bucket: resources::PACKAGING_BUCKET.into(),
        signing_key_secret_id: output(deployed, "PackageSigningKeySecretName")?.to_string(),
        signing_key_id: local.signing_key.fingerprint.clone(),
        public_keyring: local.signing_key.public_keyring.clone(),
        public_key: local.signing_key.public_key.clone(),
        cloudfront_distribution_id: output(deployed, "DistributionId")?.to_string(),
        packaging_repo_url: resources::file_url(&local.repositories.packaging),
        staging_repo_url: resources::file_url(&local.repositories.staging),
        public_repo_url: resources::file_url(&local.repositories.public),
        release_branch: RELEASE_BRANCH.into(),
        failing_builds_dir: run_dir.join("failing-builds"),
    })
}

/// The template declares the secrets by name; operators put their values. Here: the run's
/// signing key, and placeholders for the deploy keys (git ignores SSH for `file://` URLs).
fn put_secret_values(endpoint: &str, deployed: &DeployedStack, local: &LocalResources) -> Result<(), StackError> {
    let placeholder = "local stack: no SSH deploy key (the repositories are file:// URLs)";
    for (output_name, value) in [
        ("PackageSigningKeySecretName", local.signing_key.secret_key.as_str()),
        ("StagingRepoDeployKeySecretName", placeholder),
        ("PublicRepoDeployKeySecretName", placeholder),
    ] {
        let secret = output(deployed, output_name)?;
        deploy::aws_cli(
            endpoint,
            &[
                "secretsmanager",
                "put-secret-value",
                "--secret-id",
                secret,
                "--secret-string",
                value,
            ],
        )?;
    }
    Ok(())
}

/// `cargo build --workspace --bins`: the functions run from `target/debug/`.
fn build_workspace(root: &Path, path: &str, arguments: &[&str], log: &Path) -> Result<(), StackError> {
    let file = std::fs::File::create(log).context(format!("create {}", log.display()))?;
    let status = Command::new("cargo")
        .args(arguments)
        .current_dir(root)
        .env("PATH", path)
        .stdout(file.try_clone().context("duplicate a log handle")?)
        .stderr(file)
        .status()
        .context("run cargo build")?;
    if !status.success() {
        return Err(StackError(format!(
            "cargo {} failed ({status}); the end of {}:\n{}",
            arguments.join(" "),
            log.display(),
            last_lines_of(log, 30)
        )));
    }
    Ok(())
}
