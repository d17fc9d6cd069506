//! `LocalStack`: starting, using and stopping the local stack.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use serde_json::Value;

use crate::fixtures::{self, RELEASE_BRANCH, RELEASE_BRANCHES, Repositories, SigningKey};
use crate::machines::{self, REGION};
use crate::process::GroupProcess;
use crate::worker::{LocalWorker, WorkerConfig, WorkerRun};
use crate::{Context, StackError, http};

/// How long each service gets to answer after it started. `cargo lambda watch` answers before
/// it has built anything; moto takes about a second.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Any AMI ID passes moto; this one only has to have the shape the Lambdas validate.
const WORKER_AMI: &str = "ami-0abcdef1234567890";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/hhvm-local-step-functions";
/// The four kinds of worker and their instance profile variables.
const WORKER_KINDS: [&str; 4] = [
    "SOURCE_TARBALL",
    "BINARY_PACKAGE",
    "UPDATE_REPOSITORIES",
    "PUBLISH_RELEASE_SOURCE",
];

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where logs, worker sandboxes and fixtures go; default `target/local-stack/<run>/`.
    pub run_dir: Option<PathBuf>,
    /// How often the local worker asks moto for new instances.
    pub poll_interval: Duration,
    /// Print progress (stack start, every worker start and finish) to stderr.
    pub verbose: bool,
    /// Build the workspace's binaries before starting `cargo lambda watch`, so that the first
    /// invocation of each function does not wait for a compile.
    pub build: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            run_dir: None,
            poll_interval: Duration::from_millis(500),
            verbose: true,
            build: true,
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
    /// A file named `<distro>` or `<version>_<distro>` here makes that build fail.
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

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct ExecutionOutcome {
    pub arn: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl ExecutionOutcome {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

/// The running local stack. Stopped by `stop()` or when dropped.
pub struct LocalStack {
    root: PathBuf,
    run_dir: PathBuf,
    moto_port: u16,
    lambda_port: u16,
    router_port: u16,
    sdk_config: SdkConfig,
    settings: Settings,
    functions: Vec<String>,
    lambda_env: Vec<(String, String)>,
    machines: BTreeMap<String, String>,
    processes: Vec<GroupProcess>,
    worker: Option<LocalWorker>,
    verbose: bool,
}

fn free_port() -> Result<u16, StackError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .context("find a free port on 127.0.0.1")
}

/// The workspace root (this crate is `tests/` in it).
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("..");
    root.canonicalize().unwrap_or(root)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Fails naming every tool that is missing, and how to get it.
fn check_tools(venv_bin: &Path) -> Result<(), StackError> {
    let mut missing = Vec::new();
    for tool in ["moto_server", "cargo-lambda", "aws"] {
        if !venv_bin.join(tool).exists() {
            missing.push(format!("{tool} (in {})", venv_bin.display()));
        }
    }
    for tool in [
        "cargo", "git", "gpg", "gpgconf", "reprepro", "dpkg-deb", "python3", "bash", "tar",
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

/// The Lambda functions of the workspace: every binary target of a crate under `lambdas/`.
fn lambda_functions(root: &Path) -> Result<Vec<String>, StackError> {
    let metadata = fixtures::run(
        Some(root),
        &[],
        "cargo",
        &["metadata", "--no-deps", "--format-version", "1", "--offline"],
    )?;
    let metadata: Value = serde_json::from_str(&metadata).context("cargo metadata's JSON")?;
    let lambdas_dir = root.join("lambdas");
    let mut functions: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| {
            package["manifest_path"]
                .as_str()
                .is_some_and(|path| Path::new(path).starts_with(&lambdas_dir))
        })
        .flat_map(|package| package["targets"].as_array().into_iter().flatten())
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
        })
        .filter_map(|target| target["name"].as_str().map(str::to_string))
        .collect();
    functions.sort();
    Ok(functions)
}

async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "local-stack"))
        .load()
        .await
}

/// Waits until 127.0.0.1:`port` answers HTTP at `path`, or the process exits, or the time is up.
async fn wait_for_http(process: &mut GroupProcess, port: u16, path: &str, log: &Path) -> Result<(), StackError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let answered = tokio::task::spawn_blocking({
            let path = path.to_string();
            move || http::answers(port, &path)
        })
        .await
        .unwrap_or(false);
        if answered {
            return Ok(());
        }
        if let Some(status) = process.exited() {
            return Err(StackError(format!(
                "{} exited ({status}) before answering on port {port}; the end of {}:\n{}",
                process.name,
                log.display(),
                tail(log, 30)
            )));
        }
        if Instant::now() > deadline {
            return Err(StackError(format!(
                "{} did not answer on port {port} within {} s; the end of {}:\n{}",
                process.name,
                START_TIMEOUT.as_secs(),
                log.display(),
                tail(log, 30)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl LocalStack {
    /// Starts everything (see docs/local-stack.md for the order) and returns once the Lambdas,
    /// the router and the local worker are ready.
    pub async fn start(options: Options) -> Result<LocalStack, StackError> {
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
                root.join("target/local-stack")
                    .join(format!("run-{seconds}-{}", std::process::id()))
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
            build_workspace(&root, &path, &run_dir.join("build.log"))?;
        }
        let functions = lambda_functions(&root)?;

        let moto_port = free_port()?;
        let router_port = free_port()?;
        let lambda_port = free_port()?;
        let endpoint = format!("http://127.0.0.1:{moto_port}");
        let mut stack = LocalStack {
            root: root.clone(),
            run_dir: run_dir.clone(),
            moto_port,
            lambda_port,
            router_port,
            sdk_config: sdk_config_for(&endpoint).await,
            settings: Settings {
                downloads_bucket: "hhvm-downloads".into(),
                scratch_bucket: "hhvm-scratch".into(),
                nodist_bucket: "hhvm-nodist".into(),
                packaging_bucket: "hhvm-local-packaging".into(),
                signing_key_secret_id: "hhvm-local/package-signing-key".into(),
                signing_key_id: String::new(),
                public_keyring: PathBuf::new(),
                public_key: PathBuf::new(),
                cloudfront_distribution_id: String::new(),
                packaging_repo_url: String::new(),
                staging_repo_url: String::new(),
                public_repo_url: String::new(),
                release_branch: RELEASE_BRANCH.into(),
                failing_builds_dir: run_dir.join("failing-builds"),
            },
            functions,
            lambda_env: Vec::new(),
            machines: BTreeMap::new(),
            processes: Vec::new(),
            worker: None,
            verbose: options.verbose,
        };

        // moto's Step Functions engine sends its service calls (Lambda invocations) to
        // localhost:$MOTO_PORT: the router, which passes everything else back to moto.
        say(&format!("starting moto on 127.0.0.1:{moto_port} (moto.log)"));
        let moto_log = run_dir.join("moto.log");
        let mut moto = Command::new(venv_bin.join("moto_server"));
        moto.args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .env("MOTO_PORT", router_port.to_string());
        stack
            .spawn("moto", moto, &moto_log, moto_port, "/moto-api/data.json")
            .await?;
        // Execute mode uses a store of its own: it must be on before any machine exists.
        stack.moto_control(
            "POST",
            "/moto-api/config",
            r#"{"stepfunctions":{"execute_state_machine":true}}"#,
        )?;

        say("creating buckets, secrets, instance profiles, the distribution and the fixture repositories");
        stack.create_resources(&root).await?;
        stack.lambda_env = stack.lambda_environment().await?;

        say(&format!(
            "starting cargo lambda watch on 127.0.0.1:{lambda_port} (lambdas.log)"
        ));
        let mut watch = Command::new(venv_bin.join("cargo-lambda"));
        watch
            // The functions were built above; a rebuild on every edit of the tree would make
            // invocations wait for the compiler (and restart functions mid-run).
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
                &lambda_port.to_string(),
            ])
            .current_dir(&root)
            .env("PATH", &path)
            .envs(stack.lambda_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        stack
            .spawn(
                "cargo lambda watch",
                watch,
                &run_dir.join("lambdas.log"),
                lambda_port,
                "/",
            )
            .await?;

        say(&format!(
            "starting the Lambda router on 127.0.0.1:{router_port} (router.log)"
        ));
        let mut router = Command::new("python3");
        router.arg(root.join("bin/lambda-router")).args([
            "--port",
            &router_port.to_string(),
            "--lambda-port",
            &lambda_port.to_string(),
            "--emulator-port",
            &moto_port.to_string(),
        ]);
        stack
            .spawn(
                "the Lambda router",
                router,
                &run_dir.join("router.log"),
                router_port,
                "/moto-api/data.json",
            )
            .await?;

        say("starting the local EC2 worker (workers.log, workers/<instance>/)");
        stack.worker = Some(LocalWorker::start(WorkerConfig {
            ec2: stack.ec2(),
            run_dir: run_dir.clone(),
            path,
            env: stack.worker_environment(),
            poll_interval: options.poll_interval,
            verbose: options.verbose,
        }));
        say("ready");
        Ok(stack)
    }

    async fn spawn(
        &mut self,
        name: &str,
        mut command: Command,
        log: &Path,
        port: u16,
        path: &str,
    ) -> Result<(), StackError> {
        let file = std::fs::File::create(log).context(format!("create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().context("duplicate a log handle")?)
            .stderr(file);
        let mut process = GroupProcess::spawn(name, command)?;
        let ready = wait_for_http(&mut process, port, path, log).await;
        self.processes.push(process);
        ready
    }

    /// A request to moto's own API (`/moto-api/...`); fails unless it answers 2xx.
    pub fn moto_control(&self, method: &str, path: &str, body: &str) -> Result<String, StackError> {
        let response = http::request(self.moto_port, method, path, body.as_bytes(), Duration::from_secs(30))
            .context(format!("moto {method} {path}"))?;
        if !(200..300).contains(&response.status) {
            return Err(StackError(format!(
                "moto {method} {path}: HTTP {}: {}",
                response.status,
                response.text()
            )));
        }
        Ok(response.text())
    }

    /// Runs the venv's AWS CLI against moto (for IAM, Secrets Manager and CloudFront, which
    /// have no SDK crate in the workspace); returns stdout.
    pub fn aws_cli(&self, args: &[&str]) -> Result<String, StackError> {
        let output = Command::new(self.root.join(".venv/bin/aws"))
            .args(args)
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", REGION)
            .output()
            .context("run the AWS CLI of .venv")?;
        if !output.status.success() {
            return Err(StackError(format!(
                "aws {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    async fn create_resources(&mut self, root: &Path) -> Result<(), StackError> {
        let s3 = self.s3();
        let settings = self.settings.clone();
        for bucket in [
            &settings.downloads_bucket,
            &settings.scratch_bucket,
            &settings.nodist_bucket,
            &settings.packaging_bucket,
        ] {
            s3.create_bucket()
                .bucket(bucket)
                .send()
                .await
                .context(format!("S3 CreateBucket {bucket}"))?;
        }
        // apt reads the repositories over plain HTTP, and the Lambdas read CURRENT_TARGETS so.
        for bucket in [&settings.downloads_bucket, &settings.packaging_bucket] {
            let policy = serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                               "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")}]
            });
            s3.put_bucket_policy()
                .bucket(bucket)
                .policy(policy.to_string())
                .send()
                .await
                .context(format!("S3 PutBucketPolicy {bucket}"))?;
        }
        let fixtures_dir = root.join("tests/fixtures");
        let targets_path = fixtures_dir.join("packaging/CURRENT_TARGETS");
        let targets = std::fs::read(&targets_path).context(format!("read {}", targets_path.display()))?;
        for branch in std::iter::once("master").chain(RELEASE_BRANCHES) {
            s3.put_object()
                .bucket(&settings.packaging_bucket)
                .key(format!("{branch}/CURRENT_TARGETS"))
                .content_type("text/plain")
                .body(targets.clone().into())
                .send()
                .await
                .context("S3 PutObject CURRENT_TARGETS")?;
        }

        let Repositories {
            packaging,
            staging,
            public,
        } = fixtures::make_repositories(&self.run_dir.join("git"), &fixtures_dir)?;
        let url = |path: &Path| format!("file://{}", path.display());
        self.settings.packaging_repo_url = url(&packaging);
        self.settings.staging_repo_url = url(&staging);
        self.settings.public_repo_url = url(&public);

        let SigningKey {
            fingerprint,
            secret_key,
            public_keyring,
            public_key,
        } = fixtures::make_signing_key(&self.run_dir)?;
        self.aws_cli(&[
            "secretsmanager",
            "create-secret",
            "--name",
            &settings.signing_key_secret_id,
            "--secret-string",
            &secret_key,
        ])?;
        // The deploy keys are only handed to `git` as GIT_SSH_COMMAND, which file:// URLs ignore.
        for secret in [
            "hhvm-local/staging-repo-deploy-key",
            "hhvm-local/public-repo-deploy-key",
        ] {
            self.aws_cli(&[
                "secretsmanager",
                "create-secret",
                "--name",
                secret,
                "--secret-string",
                "local stack: no SSH deploy key (the repositories are file:// URLs)",
            ])?;
        }
        self.settings.signing_key_id = fingerprint;
        self.settings.public_keyring = public_keyring;
        self.settings.public_key = public_key;

        for kind in WORKER_KINDS {
            self.aws_cli(&[
                "iam",
                "create-instance-profile",
                "--instance-profile-name",
                &instance_profile(kind),
            ])?;
        }
        self.settings.cloudfront_distribution_id = self.aws_cli(&[
            "cloudfront",
            "create-distribution",
            "--origin-domain-name",
            &format!("{}.s3.amazonaws.com", settings.downloads_bucket),
            "--query",
            "Distribution.Id",
            "--output",
            "text",
        ])?;
        std::fs::create_dir_all(&settings.failing_builds_dir)
            .context(format!("create {}", settings.failing_builds_dir.display()))?;
        Ok(())
    }

    /// The environment of every Lambda: AWS pointed at moto, and each crate's configuration.
    async fn lambda_environment(&self) -> Result<Vec<(String, String)>, StackError> {
        let ec2 = self.ec2();
        let subnets = ec2.describe_subnets().send().await.context("EC2 DescribeSubnets")?;
        let subnet = subnets
            .subnets()
            .iter()
            .find_map(|s| s.subnet_id())
            .ok_or_else(|| StackError::new("moto has no default subnet"))?
            .to_string();
        let groups = ec2
            .describe_security_groups()
            .send()
            .await
            .context("EC2 DescribeSecurityGroups")?;
        let group = groups
            .security_groups()
            .iter()
            .find_map(|g| g.group_id())
            .ok_or_else(|| StackError::new("moto has no default security group"))?
            .to_string();
        let s = &self.settings;
        let mut env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("LOG_FORMAT", "text".into()),
            ("DOWNLOADS_BUCKET", s.downloads_bucket.clone()),
            ("SCRATCH_BUCKET", s.scratch_bucket.clone()),
            ("NODIST_BUCKET", s.nodist_bucket.clone()),
            ("WORKER_AMI_ID", WORKER_AMI.into()),
            ("WORKER_SUBNET_ID", subnet),
            ("WORKER_SECURITY_GROUP_IDS", group),
            (
                "CURRENT_TARGETS_URL",
                format!("{}/{}/{{branch}}/CURRENT_TARGETS", self.endpoint(), s.packaging_bucket),
            ),
            ("PACKAGING_REPO_URL", s.packaging_repo_url.clone()),
            ("STAGING_REPO_URL", s.staging_repo_url.clone()),
            ("PUBLIC_REPO_URL", s.public_repo_url.clone()),
            ("SIGNING_KEY_SECRET_ID", s.signing_key_secret_id.clone()),
            ("SIGNING_KEY_ID", s.signing_key_id.clone()),
            (
                "STAGING_DEPLOY_KEY_SECRET_ID",
                "hhvm-local/staging-repo-deploy-key".into(),
            ),
            (
                "PUBLIC_DEPLOY_KEY_SECRET_ID",
                "hhvm-local/public-repo-deploy-key".into(),
            ),
            ("BUILD_STATE_MACHINE_ARN", machines::state_machine_arn("hhvm-build")),
            (
                "PUBLISH_STATE_MACHINE_ARN",
                machines::state_machine_arn("hhvm-publish-release"),
            ),
            ("CLOUDFRONT_DISTRIBUTION_ID", s.cloudfront_distribution_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for kind in WORKER_KINDS {
            env.push((format!("{kind}_INSTANCE_PROFILE"), instance_profile(kind)));
        }
        Ok(env)
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
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// moto's endpoint (S3, EC2, Step Functions, …).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto_port)
    }

    /// The router: the Lambda Invoke API as AWS answers it (`AWS_ENDPOINT_URL_LAMBDA`).
    pub fn lambda_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.router_port)
    }

    /// `cargo lambda watch` itself (bare function names only; errors as HTTP 500).
    pub fn lambda_runtime_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.lambda_port)
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The environment every Lambda runs with.
    pub fn lambda_environment_variables(&self) -> &[(String, String)] {
        &self.lambda_env
    }

    /// Lines of `export NAME=value` for a shell that talks to the stack with the AWS CLI.
    pub fn shell_exports(&self) -> String {
        let values = [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ENDPOINT_URL_LAMBDA", self.lambda_endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_REGION", REGION.to_string()),
        ];
        values.iter().map(|(k, v)| format!("export {k}={v}\n")).collect()
    }

    /// The Lambda functions the stack serves (binary names of `lambdas/*`).
    pub fn functions(&self) -> &[String] {
        &self.functions
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

    /// The `${Name}` substitutions of state machine definitions: every function's ARN
    /// (`GetBuildVersionFunctionArn`, …) and every machine's (`BuildStateMachineArn`, …, of
    /// the machines registered or being registered). See `machines` for the naming rules.
    pub fn substitutions(&self, machine_names: &[String]) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = self
            .functions
            .iter()
            .map(|f| (machines::function_placeholder(f), machines::function_arn(f)))
            .collect();
        for name in self.machines.keys().chain(machine_names) {
            map.insert(machines::machine_placeholder(name), machines::state_machine_arn(name));
        }
        map
    }

    /// Registers every `*.asl.json` of `dir` (children first), with placeholders substituted;
    /// returns machine name → ARN of all registered machines. A machine registered before is
    /// updated to the new definition.
    pub async fn register_state_machines(&mut self, dir: &Path) -> Result<BTreeMap<String, String>, StackError> {
        let mut definitions: Vec<(String, String)> = Vec::new();
        let entries = std::fs::read_dir(dir).context(format!("read {}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(StackError(format!("no *.asl.json in {}", dir.display())));
        }
        let mut texts = BTreeMap::new();
        for file in &files {
            let name_of_file = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = machines::machine_name(name_of_file.trim_end_matches(".asl.json"));
            let text = std::fs::read_to_string(file).context(format!("read {}", file.display()))?;
            texts.insert(name.clone(), file.clone());
            definitions.push((name, text));
        }
        let names: Vec<String> = definitions.iter().map(|(n, _)| n.clone()).collect();
        let substitutions = self.substitutions(&names);
        for name in machines::creation_order(&definitions)? {
            let file = &texts[&name];
            let text = &definitions
                .iter()
                .find(|(n, _)| n == &name)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            let definition = machines::substitute(&file.display().to_string(), text, &substitutions)?;
            serde_json::from_str::<Value>(&definition)
                .context(format!("{} after substitution is not JSON", file.display()))?;
            let arn = self.create_or_update_machine(&name, &definition).await?;
            if self.verbose {
                eprintln!("local-stack: registered {name} from {}", file.display());
            }
            self.machines.insert(name, arn);
        }
        Ok(self.machines.clone())
    }

    async fn create_or_update_machine(&self, name: &str, definition: &str) -> Result<String, StackError> {
        let sfn = self.sfn();
        let created = sfn
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn(ROLE_ARN)
            .send()
            .await;
        match created {
            Ok(output) => Ok(output.state_machine_arn().to_string()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_state_machine_already_exists()) =>
            {
                let arn = machines::state_machine_arn(name);
                sfn.update_state_machine()
                    .state_machine_arn(&arn)
                    .definition(definition)
                    .send()
                    .await
                    .context(format!("Step Functions UpdateStateMachine {name}"))?;
                Ok(arn)
            }
            Err(error) => Err(error).context(format!("Step Functions CreateStateMachine {name}")),
        }
    }

    /// Starts an execution of `machine` (a name such as `hhvm-build` or `build`, or an ARN);
    /// returns the execution ARN.
    pub async fn start_execution(&self, machine: &str, name: &str, input: &Value) -> Result<String, StackError> {
        let arn = if machine.starts_with("arn:") {
            machine.to_string()
        } else {
            machines::state_machine_arn(&machines::machine_name(machine))
        };
        let output = self
            .sfn()
            .start_execution()
            .state_machine_arn(&arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .context(format!("Step Functions StartExecution of {arn} named {name}"))?;
        Ok(output.execution_arn().to_string())
    }

    /// Follows execution `arn` until it ends, calling `on_event` once for each history event in
    /// order (`describe_event` makes a progress line of one); fails after `timeout`.
    pub async fn wait_for_execution(
        &self,
        arn: &str,
        timeout: Duration,
        mut on_event: impl FnMut(&HistoryEvent),
    ) -> Result<ExecutionOutcome, StackError> {
        let sfn = self.sfn();
        let deadline = Instant::now() + timeout;
        let mut seen = 0usize;
        loop {
            let described = sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .context(format!("Step Functions DescribeExecution {arn}"))?;
            // History after the status: a finished execution's last events are then all there.
            let events = execution_history(&sfn, arn).await?;
            for event in events.iter().skip(seen) {
                on_event(event);
            }
            seen = seen.max(events.len());
            if *described.status() != ExecutionStatus::Running {
                return Ok(ExecutionOutcome {
                    arn: arn.to_string(),
                    status: described.status().as_str().to_string(),
                    output: described.output().and_then(|text| serde_json::from_str(text).ok()),
                    error: described.error().map(str::to_string),
                    cause: described.cause().map(str::to_string),
                });
            }
            if Instant::now() > deadline {
                return Err(self.still_running(arn, timeout));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Invokes `function` (a name or ARN) through the router, as an AWS SDK would.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Invocation, StackError> {
        let port = self.router_port;
        let path = format!("/2015-03-31/functions/{function}/invocations");
        let body = payload.to_string().into_bytes();
        let response =
            tokio::task::spawn_blocking(move || http::request(port, "POST", &path, &body, Duration::from_secs(900)))
                .await
                .map_err(|error| StackError(format!("invoking {function}: {error}")))?
                .context(format!("invoking {function} through the router"))?;
        if response.status != 200 {
            return Err(StackError(format!(
                "invoking {function}: HTTP {}: {} (lambdas.log has the runtime's side)",
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
        let described = self
            .ec2()
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .context(format!("EC2 DescribeInstances {id}"))?;
        described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
            .ok_or_else(|| StackError(format!("moto does not know instance {id}")))
    }

    /// Stops the local worker, then the router, `cargo lambda watch` and moto (each by its own
    /// process group). Logs stay in the run directory. Repeating it does nothing.
    pub fn stop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop();
        }
        if self.processes.is_empty() {
            return;
        }
        while let Some(mut process) = self.processes.pop() {
            process.stop();
        }
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

fn instance_profile(kind: &str) -> String {
    format!("hhvm-local-{}-worker", kind.to_ascii_lowercase().replace('_', "-"))
}

pub(crate) async fn execution_history(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Vec<HistoryEvent>, StackError> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1000)
            .set_next_token(token.clone())
            .send()
            .await
            .context(format!("Step Functions GetExecutionHistory {arn}"))?;
        events.extend(page.events().iter().cloned());
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(events),
        }
    }
}

/// `cargo build --workspace --bins`, so `cargo lambda watch` finds every function built.
fn build_workspace(root: &Path, path: &str, log: &Path) -> Result<(), StackError> {
    let file = std::fs::File::create(log).context(format!("create {}", log.display()))?;
    let status = Command::new("cargo")
        .args(["build", "--workspace", "--bins"])
        .current_dir(root)
        .env("PATH", path)
        .stdout(file.try_clone().context("duplicate a log handle")?)
        .stderr(file)
        .status()
        .context("run cargo build")?;
    if !status.success() {
        return Err(StackError(format!(
            "cargo build --workspace --bins failed ({status}); the end of {}:\n{}",
            log.display(),
            tail(log, 30)
        )));
    }
    Ok(())
}
