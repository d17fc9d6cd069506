//! Deploying the pipeline's CloudFormation into moto, as `aws cloudformation deploy` would into
//! AWS: translate the SAM template offline (`infra/translate.py`), put a package where each
//! function's `Code` points, `create-stack`, wait for it, and read back what was made — outputs,
//! resources, every function's name, ARN and environment, every state machine's ARN.
//!
//! moto must be started through `tests/moto/server.py` (`start_moto` does): plain `moto_server`
//! skips several of the template's resource types with a log warning and ignores state machine
//! substitutions, and so "deploys" a stack that is not the template's.
//!
//! ```no_run
//! # async fn example() -> Result<(), pipeline_tests::StackError> {
//! use pipeline_tests::deploy::{deploy_template, start_moto};
//! let root = std::path::Path::new(".");
//! let moto = start_moto(root, "target/moto.log".as_ref(), &[])?;
//! moto.enable_execute_mode()?; // before any state machine exists
//! let stack = deploy_template(&moto.endpoint(), root, "infra/template.yaml".as_ref(), &[], &Default::default(), "target/deploy".as_ref()).await?;
//! println!("{:?}", stack.state_machines);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use serde_json::{Value, json};

pub use pipeline_testing::MotoServer;

use crate::machines::REGION;
use crate::{Context, StackError};
use pipeline_testing::aws_cli::AwsCliServer;

/// Where the translation points every function's code (`s3://<bucket>/<binary name>.zip`).
pub const CODE_BUCKET: &str = "hhvm-pipeline-artifacts";
/// The name the stack is deployed under: the one the crates' own tests give their functions as
/// `PIPELINE_STACK`, so their fixtures' workers are this stack's.
pub const STACK_NAME: &str = pipeline_testing::TEST_STACK;
/// moto creates a stack within the CreateStack call (a 57-resource template took 2.7 s on a
/// loaded machine); the wait is only a bound for a stack that never leaves CREATE_IN_PROGRESS.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);

/// A function of the deployed stack, as Lambda describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedFunction {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    pub environment: BTreeMap<String, String>,
}

/// What a deployment made.
#[derive(Debug, Clone)]
pub struct DeployedStack {
    pub stack_name: String,
    pub outputs: BTreeMap<String, String>,
    pub functions: Vec<DeployedFunction>,
    /// State machine name → ARN.
    pub state_machines: BTreeMap<String, String>,
    /// (logical ID, resource type, physical ID) of every resource, in template order. The
    /// physical ID is empty for types without one in moto (AWS::Lambda::Permission).
    pub resources: Vec<(String, String, String)>,
}

impl DeployedStack {
    pub fn function(&self, logical_id: &str) -> Option<&DeployedFunction> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    pub fn physical_id(&self, logical_id: &str) -> Option<&str> {
        self.resources
            .iter()
            .find(|(id, _, _)| id == logical_id)
            .map(|(_, _, physical)| physical.as_str())
    }

    /// Physical IDs of the resources of `resource_type`.
    pub fn physical_ids_of(&self, resource_type: &str) -> Vec<&str> {
        self.resources
            .iter()
            .filter(|(_, kind, _)| kind == resource_type)
            .map(|(_, _, physical)| physical.as_str())
            .collect()
    }
}

/// `<root>/.venv/bin/python <root>/tests/moto/server.py`: moto's server with the CloudFormation
/// patches; it takes `moto_server`'s options.
pub fn moto_server_command(root: &Path) -> Command {
    let mut command = Command::new(root.join(".venv/bin/python"));
    command.arg(root.join("tests/moto/server.py"));
    command
}

/// moto started through `tests/moto/server.py` (the harness's `MotoServer`), with `env` added to
/// its environment (`MOTO_PORT` there is where its Step Functions engine sends service calls)
/// and its output in `log`; ready when this returns.
pub fn start_moto(root: &Path, log: &Path, env: &[(&str, String)]) -> Result<MotoServer, StackError> {
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        return Err(StackError(format!(
            "{} is missing; bin/setup-tools installs moto and the AWS CLI there",
            python.display()
        )));
    }
    let mut command = moto_server_command(root);
    command.envs(env.iter().map(|(key, value)| (*key, value.as_str())));
    Ok(MotoServer::start("moto (tests/moto/server.py)", command, log)?)
}

/// Runs the venv's AWS CLI (v1) against `endpoint` with moto's test credentials, through the
/// process's `AwsCliServer` (a stack's deploy and fixtures run dozens of commands); returns
/// stdout.
pub fn aws_cli(endpoint: &str, args: &[&str]) -> Result<String, StackError> {
    let output = AwsCliServer::shared()
        .aws()
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", REGION)
        .stdin(Stdio::null())
        .output()
        .context("run the AWS CLI of .venv")?;
    if !output.status.success() {
        return Err(StackError(format!(
            "aws {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn aws_json(endpoint: &str, args: &[&str]) -> Result<Value, StackError> {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let text = aws_cli(endpoint, &all)?;
    serde_json::from_str(&text).context(format!("the JSON of aws {}", args.join(" ")))
}

/// Translates the SAM template `template` into plain CloudFormation JSON at `output`, with
/// every function's code at `s3://CODE_BUCKET/<binary name>.zip` (infra/translate.py).
pub fn translate_template(root: &Path, template: &Path, output: &Path) -> Result<(), StackError> {
    let script = root.join("infra/translate.py");
    if !script.exists() {
        return Err(StackError(format!(
            "{} does not exist: nothing translates {}",
            script.display(),
            template.display()
        )));
    }
    let result = Command::new(root.join(".venv/bin/python"))
        .arg(&script)
        .arg("--template")
        .arg(template)
        .arg("--output")
        .arg(output)
        .args(["--code-bucket", CODE_BUCKET])
        // The region ARNs are made for: moto's.
        .args(["--parameter", &format!("AWS::Region={REGION}")])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("run infra/translate.py with .venv/bin/python")?;
    if !result.status.success() {
        return Err(StackError(format!(
            "infra/translate.py --template {} failed ({}): {}{}",
            template.display(),
            result.status,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        )));
    }
    Ok(())
}

/// Translates the SAM template `template` (into `work_dir/template.json`) and deploys it into
/// the moto at `endpoint` as stack `STACK_NAME` with `parameters`: see `deploy_cloudformation`.
/// `time_limits` shortens machines' `TimeoutSeconds` (`shorten_time_limits`); normally empty.
pub async fn deploy_template(
    endpoint: &str,
    root: &Path,
    template: &Path,
    parameters: &[(String, String)],
    time_limits: &BTreeMap<String, u64>,
    work_dir: &Path,
) -> Result<DeployedStack, StackError> {
    std::fs::create_dir_all(work_dir).context(format!("create {}", work_dir.display()))?;
    let translated = work_dir.join("template.json");
    translate_template(root, template, &translated)?;
    shorten_time_limits(&translated, time_limits)?;
    deploy_cloudformation(endpoint, &translated, parameters, work_dir).await
}

/// Fault injection: sets the `TimeoutSeconds` of each named machine (`hhvm-build`, …) in the
/// translated `template` to the given seconds, so an execution times out within a test. Every
/// name must be a state machine of the template whose definition states a `TimeoutSeconds`.
pub fn shorten_time_limits(template: &Path, time_limits: &BTreeMap<String, u64>) -> Result<(), StackError> {
    if time_limits.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(template).context(format!("read {}", template.display()))?;
    let mut document: Value =
        serde_json::from_str(&text).context(format!("{} is not CloudFormation JSON", template.display()))?;
    let resources = document["Resources"]
        .as_object_mut()
        .into_iter()
        .flat_map(|r| r.values_mut());
    let mut shortened = Vec::new();
    for resource in resources.filter(|r| r["Type"] == "AWS::StepFunctions::StateMachine") {
        // `${NamePrefix}hhvm-build`: the machine's name without the stack's prefix.
        let named = &resource["Properties"]["StateMachineName"];
        let Some(name) = named
            .as_str()
            .or_else(|| named["Fn::Sub"].as_str())
            .map(|name| name.replace("${NamePrefix}", ""))
        else {
            continue;
        };
        let Some(seconds) = time_limits.get(&name) else {
            continue;
        };
        // The translation writes the definition as `Fn::Join` of its lines; the machine's own
        // limit is the one line at the top level's indentation.
        let lines = resource["Properties"]["DefinitionString"]["Fn::Join"][1]
            .as_array_mut()
            .ok_or_else(|| {
                StackError(format!(
                    "{name}: the definition is not the translation's Fn::Join of lines"
                ))
            })?;
        let limits: Vec<&mut Value> = lines
            .iter_mut()
            .filter(|line| line.as_str().is_some_and(|l| l.starts_with("    \"TimeoutSeconds\": ")))
            .collect();
        let [line] = <[&mut Value; 1]>::try_from(limits)
            .map_err(|found| StackError(format!("{name}: {} top-level TimeoutSeconds lines", found.len())))?;
        // The last member of the definition has no comma after it: keep whatever follows.
        let text = line.as_str().unwrap_or_default();
        let rest = text
            .trim_start_matches("    \"TimeoutSeconds\": ")
            .trim_start_matches(|c: char| c.is_ascii_digit());
        *line = Value::String(format!("    \"TimeoutSeconds\": {seconds}{rest}"));
        shortened.push(name);
    }
    if let Some(missing) = time_limits.keys().find(|name| !shortened.contains(name)) {
        return Err(StackError(format!(
            "no state machine {missing} in {}",
            template.display()
        )));
    }
    std::fs::write(template, document.to_string()).context(format!("write {}", template.display()))
}

/// Deploys the plain CloudFormation JSON `template` into the moto at `endpoint` as stack
/// `STACK_NAME`: puts a placeholder package at every function's `Code` location, runs
/// create-stack with `parameters` (and the IAM and macro capabilities), waits for
/// CREATE_COMPLETE and returns what the stack holds. A failed stack is an error naming each
/// failed resource and its reason. `work_dir` receives the parameter file.
pub async fn deploy_cloudformation(
    endpoint: &str,
    template: &Path,
    parameters: &[(String, String)],
    work_dir: &Path,
) -> Result<DeployedStack, StackError> {
    let template = std::path::absolute(template).context(format!("resolve {}", template.display()))?;
    let work_dir = std::path::absolute(work_dir).context(format!("resolve {}", work_dir.display()))?;
    std::fs::create_dir_all(&work_dir).context(format!("create {}", work_dir.display()))?;
    let text = std::fs::read_to_string(&template).context(format!("read {}", template.display()))?;
    let document: Value =
        serde_json::from_str(&text).context(format!("{} is not CloudFormation JSON", template.display()))?;
    upload_placeholder_code(endpoint, &code_locations(&document)).await?;

    let parameter_file = work_dir.join("parameters.json");
    let parameter_list: Vec<Value> = parameters
        .iter()
        .map(|(key, value)| json!({"ParameterKey": key, "ParameterValue": value}))
        .collect();
    std::fs::write(&parameter_file, Value::Array(parameter_list).to_string())
        .context(format!("write {}", parameter_file.display()))?;
    let template_arg = format!("file://{}", template.display());
    let parameters_arg = format!("file://{}", parameter_file.display());
    aws_cli(
        endpoint,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            STACK_NAME,
            "--template-body",
            &template_arg,
            "--parameters",
            &parameters_arg,
            "--capabilities",
            "CAPABILITY_IAM",
            "CAPABILITY_NAMED_IAM",
            "CAPABILITY_AUTO_EXPAND",
            // moto never rolls back; say so, and a failure leaves what was made for inspection.
            "--disable-rollback",
        ],
    )?;
    let described = wait_for_creation(endpoint, STACK_NAME).await?;
    read_stack(endpoint, &described)
}

/// Every `(bucket, key)` a function's `Code` refers to.
fn code_locations(template: &Value) -> Vec<(String, String)> {
    let mut locations: Vec<(String, String)> = template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|resources| resources.values())
        .filter(|resource| resource["Type"] == "AWS::Lambda::Function")
        .filter_map(|resource| {
            let code = &resource["Properties"]["Code"];
            Some((
                code["S3Bucket"].as_str()?.to_string(),
                code["S3Key"].as_str()?.to_string(),
            ))
        })
        .collect();
    locations.sort();
    locations.dedup();
    locations
}

/// moto reads a function's package from S3 when it creates the function, so one must be at
/// every location. The local stack runs the functions from target/debug under its Lambda
/// service, not from these packages: each holds only a `bootstrap` that says so.
async fn upload_placeholder_code(endpoint: &str, locations: &[(String, String)]) -> Result<(), StackError> {
    if locations.is_empty() {
        return Ok(());
    }
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await;
    let s3 = pipeline_aws::s3_client(&config);
    let package = placeholder_zip();
    let mut buckets: Vec<&str> = locations.iter().map(|(bucket, _)| bucket.as_str()).collect();
    buckets.dedup();
    for bucket in buckets {
        let created = s3.create_bucket().bucket(bucket).send().await;
        if let Err(error) = created {
            let ours = error
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you());
            if !ours {
                return Err(error).context(format!("S3 CreateBucket {bucket}"));
            }
        }
    }
    for (bucket, key) in locations {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/zip")
            .body(package.clone().into())
            .send()
            .await
            .context(format!("S3 PutObject {bucket}/{key}"))?;
    }
    Ok(())
}

const PLACEHOLDER_BOOTSTRAP: &[u8] = b"#!/bin/sh\n\
echo 'placeholder package: the local stack runs this function from target/debug' >&2\n\
exit 1\n";

/// A zip archive holding one executable file, `bootstrap` (stored, not compressed).
fn placeholder_zip() -> Vec<u8> {
    let name = b"bootstrap";
    let crc = crc32(PLACEHOLDER_BOOTSTRAP);
    let size = PLACEHOLDER_BOOTSTRAP.len() as u32;
    // Shared by the local and the central header: version 2.0, no flags, stored, 1980-01-01.
    let common = |out: &mut Vec<u8>| {
        for half in [20u16, 0, 0, 0, 0x21] {
            out.extend(half.to_le_bytes());
        }
        for word in [crc, size, size] {
            out.extend(word.to_le_bytes());
        }
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes()); // extra field length
    };
    let mut zip = Vec::new();
    zip.extend(0x0403_4b50u32.to_le_bytes());
    common(&mut zip);
    zip.extend(name);
    zip.extend(PLACEHOLDER_BOOTSTRAP);
    let central_offset = zip.len() as u32;
    zip.extend(0x0201_4b50u32.to_le_bytes());
    zip.extend(((3u16 << 8) | 20).to_le_bytes()); // made by Unix, so the mode below counts
    common(&mut zip);
    zip.extend([0u8; 6]); // comment length, disk number, internal attributes
    zip.extend((0o100_755u32 << 16).to_le_bytes()); // -rwxr-xr-x
    zip.extend(0u32.to_le_bytes()); // the local header's offset
    zip.extend(name);
    let central_size = zip.len() as u32 - central_offset;
    zip.extend(0x0605_4b50u32.to_le_bytes());
    zip.extend([0u8; 4]); // this disk, the central directory's disk
    zip.extend(1u16.to_le_bytes());
    zip.extend(1u16.to_le_bytes());
    zip.extend(central_size.to_le_bytes());
    zip.extend(central_offset.to_le_bytes());
    zip.extend(0u16.to_le_bytes()); // comment length
    zip
}

/// CRC-32 (IEEE 802.3), as zip archives carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Waits until stack `name` is no longer being created; returns its description if it reached
/// CREATE_COMPLETE, else an error with every failed resource and its reason.
async fn wait_for_creation(endpoint: &str, name: &str) -> Result<Value, StackError> {
    let deadline = Instant::now() + DEPLOY_TIMEOUT;
    loop {
        let described = aws_json(endpoint, &["cloudformation", "describe-stacks", "--stack-name", name])?;
        let stack = described["Stacks"][0].clone();
        let status = stack["StackStatus"].as_str().unwrap_or("").to_string();
        let in_progress = status.ends_with("_IN_PROGRESS") || status == "CREATE_PENDING";
        if status == "CREATE_COMPLETE" {
            return Ok(stack);
        }
        if !in_progress || Instant::now() > deadline {
            let failures = failed_resources(endpoint, name)?;
            let when = if in_progress {
                format!("still {status} after {} s", DEPLOY_TIMEOUT.as_secs())
            } else {
                status
            };
            return Err(StackError(format!(
                "stack {name}: {when}; {}",
                if failures.is_empty() {
                    "no resource reported a failure".to_string()
                } else {
                    format!("failed: {}", failures.join("; "))
                }
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `LogicalId (Type): reason` of every failure event of the stack, oldest first.
fn failed_resources(endpoint: &str, name: &str) -> Result<Vec<String>, StackError> {
    let events = aws_json(
        endpoint,
        &["cloudformation", "describe-stack-events", "--stack-name", name],
    )?;
    let mut failures: Vec<String> = events["StackEvents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| {
            event["ResourceStatus"].as_str().is_some_and(|s| s.ends_with("_FAILED"))
                && event["ResourceType"] != "AWS::CloudFormation::Stack"
        })
        .map(|event| {
            format!(
                "{} ({}): {}",
                event["LogicalResourceId"].as_str().unwrap_or("?"),
                event["ResourceType"].as_str().unwrap_or("?"),
                event["ResourceStatusReason"].as_str().unwrap_or("no reason given")
            )
        })
        .collect();
    failures.reverse(); // describe-stack-events lists the newest first
    Ok(failures)
}

fn read_stack(endpoint: &str, described: &Value) -> Result<DeployedStack, StackError> {
    let text = |value: &Value| value.as_str().unwrap_or("").to_string();
    let outputs = described["Outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|output| (text(&output["OutputKey"]), text(&output["OutputValue"])))
        .collect();
    let listed = aws_json(
        endpoint,
        &["cloudformation", "list-stack-resources", "--stack-name", STACK_NAME],
    )?;
    let resources: Vec<(String, String, String)> = listed["StackResourceSummaries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                text(&r["LogicalResourceId"]),
                text(&r["ResourceType"]),
                text(&r["PhysicalResourceId"]),
            )
        })
        .collect();

    let state_machines = resources
        .iter()
        .filter(|(_, kind, _)| kind == "AWS::StepFunctions::StateMachine")
        .map(|(_, _, arn)| {
            let name = arn.rsplit_once(":stateMachine:").map(|(_, n)| n).unwrap_or(arn);
            (name.to_string(), arn.clone())
        })
        .collect();

    let listed_functions = aws_json(endpoint, &["lambda", "list-functions"])?;
    let mut functions = Vec::new();
    for (logical_id, _, name) in resources.iter().filter(|(_, kind, _)| kind == "AWS::Lambda::Function") {
        let function = listed_functions["Functions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["FunctionName"] == name.as_str())
            .ok_or_else(|| {
                StackError(format!(
                    "stack {STACK_NAME} lists function {logical_id} ({name}), Lambda does not"
                ))
            })?;
        let environment = function["Environment"]["Variables"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, value)| {
                (
                    key.clone(),
                    value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string()),
                )
            })
            .collect();
        functions.push(DeployedFunction {
            logical_id: logical_id.clone(),
            name: name.clone(),
            arn: text(&function["FunctionArn"]),
            environment,
        });
    }
    Ok(DeployedStack {
        stack_name: STACK_NAME.to_string(),
        outputs,
        functions,
        state_machines,
        resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_zip_checksum() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn the_placeholder_package_is_a_zip_with_an_executable_bootstrap() {
        let dir = std::env::temp_dir().join(format!("placeholder-zip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("package.zip");
        std::fs::write(&path, placeholder_zip()).unwrap();
        // Python's zipfile checks the headers and the checksum (testzip reads every member).
        let check = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 assert z.testzip() is None\n\
                 info = z.getinfo('bootstrap')\n\
                 print(z.namelist(), oct(info.external_attr >> 16), z.read('bootstrap').decode())",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
        assert!(stdout.starts_with("['bootstrap'] 0o100755 #!/bin/sh"), "{stdout}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn code_locations_are_those_of_functions_only() {
        let template = json!({"Resources": {
            "A": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Bucket": "b", "S3Key": "a.zip"}}},
            "B": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Bucket": "b", "S3Key": "a.zip"}}},
            "C": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"ZipFile": "inline"}}},
            "D": {"Type": "AWS::S3::Bucket", "Properties": {"Code": {"S3Bucket": "x", "S3Key": "y"}}}
        }});
        assert_eq!(code_locations(&template), [("b".to_string(), "a.zip".to_string())]);
    }
}
