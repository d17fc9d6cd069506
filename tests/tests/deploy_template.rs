//! Deploying CloudFormation into moto started through tests/moto/server.py: every resource kind
//! the pipeline's template uses is created and its Refs resolve, state machines get their
//! substitutions and run in execute mode, and what cannot be deployed fails the stack, naming
//! why, and execution histories come in pages as AWS's do (what `hhvmctl`'s watch reads). The
//! last test deploys the real template (infra/template.yaml), and loads each function's
//! configuration from the environment the stack gave it.
//!
//! Each test starts its own moto on a free port.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hhvmctl::history::{self, Histories};
use pipeline_aws::Function;
use pipeline_aws::config::Source;
use pipeline_core::PipelineError;
use pipeline_tests::deploy::{self, DeployedStack, MotoServer};
use serde_json::Value;

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/infra").join(name)
}

/// A directory of its own for test `name` under target/deploy-template/ (moto's log, the
/// translated template, the parameters), kept for reading after a failure.
fn run_dir(name: &str) -> PathBuf {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = root()
        .join("target/deploy-template")
        .join(format!("{name}-{seconds}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn start_moto(dir: &Path) -> MotoServer {
    let moto = deploy::start_moto(&root(), &dir.join("moto.log"), &[]).unwrap_or_else(|e| panic!("{e}"));
    moto.enable_execute_mode().unwrap_or_else(|e| panic!("{e}"));
    moto
}

fn aws(moto: &MotoServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let text = deploy::aws_cli(moto.endpoint(), &all).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("aws {}: {e}: {text}", args.join(" ")))
}

fn parameters(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn deploy_fixture(
    moto: &MotoServer,
    name: &str,
    dir: &Path,
    pairs: &[(&str, &str)],
) -> Result<DeployedStack, String> {
    deploy::deploy_cloudformation(moto.endpoint(), &fixture(name), &parameters(pairs), dir)
        .await
        .map_err(|e| e.to_string())
}

/// Starts an execution and waits (bounded) until it is no longer RUNNING.
fn run_execution(moto: &MotoServer, machine_arn: &str, input: &str) -> Value {
    let started = aws(
        moto,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            machine_arn,
            "--input",
            input,
        ],
    );
    let execution = started["executionArn"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let described = aws(
            moto,
            &["stepfunctions", "describe-execution", "--execution-arn", &execution],
        );
        if described["status"] != "RUNNING" {
            return described;
        }
        assert!(Instant::now() < deadline, "{execution} still runs after 30 s");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_resource_kind_of_the_pipeline_deploys_and_its_references_resolve() {
    let dir = run_dir("every-resource-kind");
    let moto = start_moto(&dir);
    let stack = deploy_fixture(&moto, "every-resource-kind.json", &dir, &[("NamePrefix", "fixture-")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Every output resolved to a plain value (moto drops unresolvable ones, or leaves objects).
    let expected_outputs = [
        "DownloadsBucketName",
        "DistributionId",
        "DistributionDomainName",
        "OriginAccessControlId",
        "DirectoryIndexFunctionArn",
        "SigningKeySecretArn",
        "EchoFunctionArn",
        "CallEchoStateMachineArn",
        "PassStateMachineArn",
        "PassStateMachineName",
        "NightlyScheduleName",
        "NightlyScheduleArn",
        "NotificationTopicArn",
        "NotificationSubscriptionArn",
        "FailureRuleArn",
        "WorkerInstanceProfileArn",
        "WorkerSecurityGroupId",
        "EchoFunctionLogGroupArn",
    ];
    let keys: BTreeSet<&str> = stack.outputs.keys().map(String::as_str).collect();
    assert_eq!(keys, expected_outputs.into_iter().collect(), "{:#?}", stack.outputs);
    for (key, value) in &stack.outputs {
        assert!(
            !value.is_empty() && !value.contains("Fn::") && !value.contains('{'),
            "output {key} = {value:?}"
        );
    }
    let output = |key: &str| stack.outputs[key].as_str();
    assert_eq!(output("DownloadsBucketName"), "fixture-downloads");
    assert!(
        output("SigningKeySecretArn")
            .starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:fixture-package-signing-key")
    );
    assert_eq!(
        output("EchoFunctionArn"),
        "arn:aws:lambda:us-east-1:123456789012:function:fixture-echo"
    );
    assert_eq!(output("PassStateMachineName"), "fixture-pass");
    assert_eq!(output("NightlyScheduleName"), "fixture-nightly");
    assert!(output("DistributionDomainName").ends_with(".cloudfront.net"));

    // Every resource is listed with its type; only a permission has no physical ID in moto.
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("every-resource-kind.json")).unwrap()).unwrap();
    assert_eq!(
        stack.resources.len(),
        template["Resources"].as_object().unwrap().len(),
        "{:#?}",
        stack.resources
    );
    for (logical_id, kind, physical) in &stack.resources {
        assert!(
            physical.is_empty() == (kind == "AWS::Lambda::Permission"),
            "{logical_id} {kind} {physical:?}"
        );
    }
    assert_eq!(stack.physical_id("Distribution"), Some(output("DistributionId")));
    assert_eq!(
        stack.physical_id("OriginAccessControl"),
        Some(output("OriginAccessControlId"))
    );

    // The function's environment holds what its Refs and Fn::GetAtts name.
    assert_eq!(stack.functions.len(), 1);
    let echo = stack.function("EchoFunction").expect("EchoFunction deployed");
    assert_eq!(
        (echo.name.as_str(), echo.arn.as_str()),
        ("fixture-echo", output("EchoFunctionArn"))
    );
    let environment: BTreeMap<&str, &str> = echo.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        environment,
        BTreeMap::from([
            ("DOWNLOADS_BUCKET", "fixture-downloads"),
            ("SIGNING_KEY_SECRET_ID", output("SigningKeySecretArn")),
            ("CLOUDFRONT_DISTRIBUTION_ID", output("DistributionId")),
            ("NOTIFICATION_TOPIC_ARN", output("NotificationTopicArn")),
            ("WORKER_SECURITY_GROUP_IDS", output("WorkerSecurityGroupId")),
            ("WORKER_INSTANCE_PROFILE", "fixture-worker"),
        ])
    );
    let configuration = aws(
        &moto,
        &[
            "lambda",
            "get-function-configuration",
            "--function-name",
            "fixture-echo",
        ],
    );
    assert_eq!(configuration["Architectures"], serde_json::json!(["arm64"]));
    assert_eq!(configuration["Runtime"], "provided.al2023");

    // State machines: created in execute mode's store, placeholders substituted.
    assert_eq!(
        stack.state_machines,
        BTreeMap::from([
            (
                "fixture-call-echo".to_string(),
                output("CallEchoStateMachineArn").to_string()
            ),
            ("fixture-pass".to_string(), output("PassStateMachineArn").to_string()),
        ])
    );
    let described = aws(
        &moto,
        &[
            "stepfunctions",
            "describe-state-machine",
            "--state-machine-arn",
            output("CallEchoStateMachineArn"),
        ],
    );
    let definition: Value = serde_json::from_str(described["definition"].as_str().unwrap()).unwrap();
    assert_eq!(definition["States"]["Call Echo"]["Resource"], output("EchoFunctionArn"));
    assert_eq!(definition["States"]["Call Echo"]["ResultPath"], Value::Null);
    let execution = run_execution(&moto, output("PassStateMachineArn"), r#"{"version":"nightly"}"#);
    assert_eq!(execution["status"], "SUCCEEDED", "{execution:#}");
    let result: Value = serde_json::from_str(execution["output"].as_str().unwrap()).unwrap();
    assert_eq!(
        result,
        serde_json::json!({"version": "nightly", "said": {"greeting": "hello"}})
    );

    // The schedule reads back with its target (moto never fires it).
    let schedule = aws(&moto, &["scheduler", "get-schedule", "--name", "fixture-nightly"]);
    assert_eq!(schedule["Arn"], output("NightlyScheduleArn"));
    assert_eq!(schedule["ScheduleExpression"], "cron(0 8 * * ? *)");
    assert_eq!(schedule["Target"]["Arn"], output("PassStateMachineArn"));
    assert_eq!(schedule["Target"]["Input"], r#"{"version": "nightly"}"#);
    assert_eq!(schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"], 0);

    // The distribution, its origin access control, and the bucket policy naming it.
    let distribution = aws(
        &moto,
        &["cloudfront", "get-distribution", "--id", output("DistributionId")],
    );
    let distribution = &distribution["Distribution"];
    assert_eq!(distribution["DomainName"], output("DistributionDomainName"));
    let config = &distribution["DistributionConfig"];
    assert_eq!(
        config["Origins"]["Items"][0]["DomainName"],
        "fixture-downloads.s3.us-east-1.amazonaws.com"
    );
    assert_eq!(
        config["DefaultCacheBehavior"]["ViewerProtocolPolicy"],
        "redirect-to-https"
    );
    assert_eq!(config["CacheBehaviors"]["Items"][0]["PathPattern"], "*/dists/*");
    assert_eq!(config["Aliases"]["Items"], serde_json::json!(["dl.example.com"]));
    // moto's distribution model keeps no function associations (nor an origin's access
    // control), whichever API creates it: the function is checked on its own.
    assert_eq!(
        output("DirectoryIndexFunctionArn"),
        "arn:aws:cloudfront::123456789012:function/fixture-directory-index"
    );
    let function = aws(
        &moto,
        &["cloudfront", "describe-function", "--name", "fixture-directory-index"],
    );
    assert_eq!(function["FunctionSummary"]["FunctionMetadata"]["Stage"], "LIVE");
    let control = aws(
        &moto,
        &[
            "cloudfront",
            "get-origin-access-control",
            "--id",
            output("OriginAccessControlId"),
        ],
    );
    assert_eq!(
        control["OriginAccessControl"]["OriginAccessControlConfig"]["Name"],
        "fixture-downloads"
    );
    let policy = aws(&moto, &["s3api", "get-bucket-policy", "--bucket", "fixture-downloads"]);
    let policy: Value = serde_json::from_str(policy["Policy"].as_str().unwrap()).unwrap();
    let condition = &policy["Statement"][0]["Condition"]["StringEquals"]["AWS:SourceArn"];
    assert_eq!(
        condition.as_str().unwrap(),
        format!(
            "arn:aws:cloudfront::123456789012:distribution/{}",
            output("DistributionId")
        )
    );
    assert_eq!(policy["Statement"][0]["Resource"], "arn:aws:s3:::fixture-downloads/*");

    // The bucket's settings that moto's own model ignores.
    let block = aws(
        &moto,
        &["s3api", "get-public-access-block", "--bucket", "fixture-downloads"],
    );
    assert_eq!(block["PublicAccessBlockConfiguration"]["BlockPublicPolicy"], true);
    let versioning = aws(
        &moto,
        &["s3api", "get-bucket-versioning", "--bucket", "fixture-downloads"],
    );
    assert_eq!(versioning["Status"], "Enabled");
    let lifecycle = aws(
        &moto,
        &[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "fixture-downloads",
        ],
    );
    let rules = lifecycle["Rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{lifecycle:#}");
    assert_eq!(rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"], 30);
    assert_eq!(rules[1]["Filter"]["Prefix"], "scratch/");
    assert_eq!(rules[1]["Expiration"]["Days"], 7);

    // The secret (no value: an operator sets it) and the subscription.
    let secret = aws(
        &moto,
        &[
            "secretsmanager",
            "describe-secret",
            "--secret-id",
            "fixture-package-signing-key",
        ],
    );
    assert_eq!(secret["ARN"], output("SigningKeySecretArn"));
    let subscriptions = aws(
        &moto,
        &[
            "sns",
            "list-subscriptions-by-topic",
            "--topic-arn",
            output("NotificationTopicArn"),
        ],
    );
    assert_eq!(
        subscriptions["Subscriptions"][0]["SubscriptionArn"],
        output("NotificationSubscriptionArn")
    );
    assert_eq!(subscriptions["Subscriptions"][0]["Endpoint"], "operators@example.com");
    let targets = aws(
        &moto,
        &[
            "events",
            "list-targets-by-rule",
            "--rule",
            stack.physical_id("FailureRule").unwrap(),
        ],
    );
    assert_eq!(targets["Targets"][0]["Arn"], output("EchoFunctionArn"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_placeholder_without_a_substitution_fails_the_deploy_naming_it() {
    let dir = run_dir("dangling-placeholder");
    let moto = start_moto(&dir);
    let error = deploy_fixture(&moto, "dangling-placeholder.json", &dir, &[])
        .await
        .expect_err("a definition with an unknown placeholder deployed");
    assert!(error.contains("CREATE_FAILED"), "{error}");
    assert!(
        error.contains("BuildStateMachine (AWS::StepFunctions::StateMachine)") && error.contains("fixture-build"),
        "{error}"
    );
    assert!(error.contains("${BuildSourceTarballFunctionArn}"), "{error}");
    assert!(
        !error.contains("${GetBuildVersionFunctionArn}"),
        "a substituted placeholder reported: {error}"
    );
    // The machine was not made.
    let machines = aws(&moto, &["stepfunctions", "list-state-machines"]);
    assert_eq!(machines["stateMachines"], serde_json::json!([]), "{machines:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_type_moto_lacks_fails_the_deploy_naming_the_type() {
    let dir = run_dir("unsupported-resource-type");
    let moto = start_moto(&dir);
    let error = deploy_fixture(&moto, "unsupported-resource-type.json", &dir, &[])
        .await
        .expect_err("a template with AWS::Glue::Database deployed");
    assert!(error.contains("CREATE_FAILED"), "{error}");
    assert!(error.contains("CatalogDatabase (AWS::Glue::Database)"), "{error}");
    assert!(
        error.contains("Resource type AWS::Glue::Database is not supported"),
        "{error}"
    );
    // The failed stack still answers (moto's own code would re-create resources to list them).
    let resources = aws(
        &moto,
        &[
            "cloudformation",
            "list-stack-resources",
            "--stack-name",
            deploy::STACK_NAME,
        ],
    );
    let listed: Vec<&str> = resources["StackResourceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LogicalResourceId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["ScratchBucket"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn definitions_from_s3_and_inline_get_their_substitutions() {
    let dir = run_dir("definition-sources");
    let moto = start_moto(&dir);
    let definition = fixture("say.asl.json");
    aws(&moto, &["s3api", "create-bucket", "--bucket", "fixture-definitions"]);
    aws(
        &moto,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "fixture-definitions",
            "--key",
            "say.asl.json",
            "--body",
            definition.to_str().unwrap(),
        ],
    );
    let stack = deploy_fixture(&moto, "definition-sources.json", &dir, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let from_s3 = run_execution(&moto, &stack.state_machines["fixture-from-s3"], "{}");
    assert_eq!(from_s3["status"], "SUCCEEDED", "{from_s3:#}");
    let output: Value = serde_json::from_str(from_s3["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, serde_json::json!({"word": "from s3"}));
    // Substitution values that are not strings are written as CloudFormation writes them.
    let inline = run_execution(&moto, &stack.state_machines["fixture-inline"], "{}");
    assert_eq!(inline["status"], "SUCCEEDED", "{inline:#}");
    let output: Value = serde_json::from_str(inline["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, serde_json::json!({"count": "3", "enabled": "true"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attribute_moto_lacks_fails_the_deploy_naming_it() {
    let dir = run_dir("unknown-attribute");
    let moto = start_moto(&dir);
    let error = deploy_fixture(&moto, "unknown-attribute.json", &dir, &[])
        .await
        .expect_err("a Fn::GetAtt of an attribute moto lacks deployed");
    assert!(error.contains("NotificationTopic (AWS::SNS::Topic)"), "{error}");
    assert!(error.contains("Fn::GetAtt ScratchBucket.NoSuchAttribute"), "{error}");
}

#[test]
fn the_launcher_takes_its_port_from_moto_port_as_moto_server_does() {
    let dir = run_dir("moto-port");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let log = std::fs::File::create(dir.join("moto.log")).unwrap();
    let mut child = deploy::moto_server_command(&root())
        .args(["-H", "127.0.0.1"])
        .env("MOTO_PORT", port.to_string())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let listening = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        listening,
        "server.py did not listen on MOTO_PORT={port}; see {}",
        dir.join("moto.log").display()
    );
}

/// Pass states before and after a two-second Wait: a history of over two hundred events, still
/// growing for a while after the execution starts.
fn paced_machine_definition() -> String {
    let names: Vec<String> = (0..100).map(|n| format!("Pass {n}")).collect();
    let mut states = serde_json::Map::new();
    for (index, name) in names.iter().enumerate() {
        let next = if index == 39 {
            "Pause".to_string()
        } else {
            names.get(index + 1).cloned().unwrap_or_default()
        };
        let state = if index + 1 == names.len() {
            serde_json::json!({"Type": "Pass", "End": true})
        } else {
            serde_json::json!({"Type": "Pass", "Next": next})
        };
        states.insert(name.clone(), state);
    }
    states.insert(
        "Pause".into(),
        serde_json::json!({"Type": "Wait", "Seconds": 2, "Next": "Pass 40"}),
    );
    serde_json::json!({"StartAt": "Pass 0", "States": states}).to_string()
}

fn ids(events: &[aws_sdk_sfn::types::HistoryEvent]) -> Vec<i64> {
    events.iter().map(|event| event.id()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn execution_histories_come_in_pages_either_way_and_a_watch_reads_only_what_is_new() {
    let dir = run_dir("execution-history-pages");
    let moto = start_moto(&dir);
    let sfn = aws_sdk_sfn::Client::new(&moto.sdk_config().await);
    let machine = sfn
        .create_state_machine()
        .name("paced")
        .role_arn("arn:aws:iam::123456789012:role/paced")
        .definition(paced_machine_definition())
        .send()
        .await
        .unwrap();
    let started = sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .name("paced-run")
        .input("{}")
        .send()
        .await
        .unwrap();
    let arn = started.execution_arn();

    // hhvmctl's watch: each refresh adds what is new to what it has read.
    let mut histories = Histories::default();
    let mut refreshes = 0;
    let watched = loop {
        let events = histories.refresh(&sfn, arn).await.unwrap().to_vec();
        refreshes += 1;
        if history::is_complete(&events) {
            break events;
        }
        assert!(refreshes < 600, "paced-run did not end within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refreshes > 2,
        "the watch found paced-run ended at once: nothing was read while it ran"
    );
    let whole = history::execution_history(&sfn, arn).await.unwrap();
    let count = whole.len() as i64;
    assert!(count > 200, "{count} events");
    assert_eq!(
        whole.iter().map(|event| event.id).collect::<Vec<_>>(),
        (1..=count).collect::<Vec<_>>()
    );
    assert_eq!(watched, whole, "the watch's history is not the execution's");
    // Newest first, a page of 25 at a time, until the page that reaches the event given.
    let last_three = history::events_after(&sfn, arn, count - 3).await.unwrap();
    assert_eq!(last_three, whole[whole.len() - 3..]);
    let all_but_the_first = history::events_after(&sfn, arn, 1).await.unwrap();
    assert_eq!(all_but_the_first, whole[1..]);
    assert!(history::events_after(&sfn, arn, count).await.unwrap().is_empty());

    // The pages as AWS gives them: 100 events by default, oldest first; or newest first; each
    // nextToken goes on from the page it came with.
    let first = sfn.get_execution_history().execution_arn(arn).send().await.unwrap();
    assert_eq!(ids(first.events()), (1..=100).collect::<Vec<_>>());
    let second = sfn
        .get_execution_history()
        .execution_arn(arn)
        .set_next_token(first.next_token().map(str::to_string))
        .send()
        .await
        .unwrap();
    assert_eq!(ids(second.events()), (101..=200).collect::<Vec<_>>());
    let newest = sfn
        .get_execution_history()
        .execution_arn(arn)
        .reverse_order(true)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(newest.events()), [count, count - 1]);
    let older = sfn
        .get_execution_history()
        .execution_arn(arn)
        .reverse_order(true)
        .max_results(2)
        .set_next_token(newest.next_token().map(str::to_string))
        .send()
        .await
        .unwrap();
    assert_eq!(ids(older.events()), [count - 2, count - 3]);
    let everything = sfn
        .get_execution_history()
        .execution_arn(arn)
        .max_results(1000)
        .send()
        .await
        .unwrap();
    assert_eq!(everything.events().len() as i64, count);
    assert_eq!(everything.next_token(), None);
    let refused = sfn
        .get_execution_history()
        .execution_arn(arn)
        .next_token("not-a-token")
        .send()
        .await
        .expect_err("a made-up nextToken was taken");
    assert_eq!(refused.into_service_error().meta().code(), Some("InvalidToken"));
}

/// What the local stack passes for the template's parameters, by name or else by type; the
/// template's defaults serve for everything else.
fn local_parameter_value(name: &str, kind: &str, moto: &MotoServer) -> Option<String> {
    let ec2 = |args: &[&str]| -> String {
        let value = aws(moto, args);
        value
            .as_str()
            .unwrap_or_else(|| panic!("aws {}: {value}", args.join(" ")))
            .to_string()
    };
    let default_vpc = || {
        ec2(&[
            "ec2",
            "describe-vpcs",
            "--filters",
            "Name=is-default,Values=true",
            "--query",
            "Vpcs[0].VpcId",
        ])
    };
    let default_subnet = || {
        let vpc = default_vpc();
        ec2(&[
            "ec2",
            "describe-subnets",
            "--filters",
            &format!("Name=vpc-id,Values={vpc}"),
            "--query",
            "Subnets[0].SubnetId",
        ])
    };
    match (name, kind) {
        ("WorkerAmiId", _) | (_, "AWS::EC2::Image::Id") => Some("ami-12c6146b".into()),
        ("WorkerVpcId", _) | (_, "AWS::EC2::VPC::Id") => Some(default_vpc()),
        ("WorkerSubnetId", _) | (_, "AWS::EC2::Subnet::Id" | "List<AWS::EC2::Subnet::Id>") => Some(default_subnet()),
        ("WorkerKeyName", _) => Some(String::new()),
        ("NamePrefix", _) => Some(String::new()),
        ("NotificationEmail", _) => Some("operators@example.com".into()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_template_deploys_every_function_with_its_environment() {
    let root = root();
    let template = root.join("infra/template.yaml");
    assert!(template.exists(), "{} is missing", template.display());
    let dir = run_dir("pipeline-template");
    let moto = start_moto(&dir);

    // The parameters: local values where the template has no default or the local stack needs
    // its own (the worker's AMI, VPC and subnet are moto's).
    let discovery = dir.join("parameters");
    std::fs::create_dir_all(&discovery).unwrap();
    deploy::translate_template(&root, &template, &discovery.join("template.json")).unwrap_or_else(|e| panic!("{e}"));
    let translated: Value =
        serde_json::from_str(&std::fs::read_to_string(discovery.join("template.json")).unwrap()).unwrap();
    let mut parameters = Vec::new();
    let mut missing = Vec::new();
    // Every value a parameter has in this deployment: a variable may name an existing resource.
    let mut parameter_values = BTreeSet::new();
    for (name, declaration) in translated["Parameters"].as_object().into_iter().flatten() {
        let kind = declaration["Type"].as_str().unwrap_or("String");
        match local_parameter_value(name, kind, &moto) {
            Some(value) => {
                parameter_values.insert(value.clone());
                parameters.push((name.clone(), value));
            }
            None => match &declaration["Default"] {
                Value::Null => missing.push(format!("{name} ({kind})")),
                Value::String(default) => {
                    parameter_values.insert(default.clone());
                }
                default => {
                    parameter_values.insert(default.to_string());
                }
            },
        }
    }
    assert!(
        missing.is_empty(),
        "no local value for the template's parameters {missing:?}"
    );
    let key_name_empty = parameters
        .iter()
        .any(|(name, value)| name == "WorkerKeyName" && value.is_empty());

    let stack = deploy::deploy_template(
        moto.endpoint(),
        &root,
        &template,
        &parameters,
        &Default::default(),
        &dir,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Resources a variable may name, by the kind of variable.
    let physical =
        |kind: &str| -> BTreeSet<String> { stack.physical_ids_of(kind).into_iter().map(String::from).collect() };
    let buckets = physical("AWS::S3::Bucket");
    let secrets = physical("AWS::SecretsManager::Secret");
    let profiles = physical("AWS::IAM::InstanceProfile");
    let topics = physical("AWS::SNS::Topic");
    let distributions = physical("AWS::CloudFront::Distribution");
    let machine_arns: BTreeSet<String> = stack.state_machines.values().cloned().collect();

    let mut problems = Vec::new();
    // Every variable the template declares for a function, set or (on purpose) left out, names
    // something this deployment has. Which variables a function needs, and that it reads each
    // one it is given, is its configuration loader's to say (below).
    let resources = translated["Resources"]
        .as_object()
        .expect("the translation's Resources");
    let declared_functions: BTreeSet<&str> = resources
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Lambda::Function")
        .map(|(logical_id, _)| logical_id.as_str())
        .collect();
    let deployed_functions: BTreeSet<&str> = stack.functions.iter().map(|f| f.logical_id.as_str()).collect();
    assert_eq!(
        declared_functions, deployed_functions,
        "the functions the template declares and those the stack deployed"
    );
    for function in &stack.functions {
        let (logical_id, name) = (function.logical_id.as_str(), function.name.as_str());
        let declared = &resources[logical_id]["Properties"]["Environment"]["Variables"];
        let variables: BTreeSet<&str> = declared
            .as_object()
            .into_iter()
            .flat_map(|variables| variables.keys())
            .chain(function.environment.keys())
            .map(String::as_str)
            .collect();
        for variable in variables {
            let Some(value) = function.environment.get(variable) else {
                // Absent is right where the template leaves it out on purpose (the function's
                // default applies): `!If [Condition, value, !Ref AWS::NoValue]`.
                if !may_be_left_out(&declared[variable]) {
                    problems.push(format!("{name}: {variable} is not set"));
                }
                continue;
            };
            // A name or ARN of what the stack made, or (an existing resource) a parameter's value.
            let resolved = (!value.is_empty() && parameter_values.contains(value))
                || match variable {
                    v if v.ends_with("_BUCKET") => buckets.contains(value),
                    v if v.ends_with("_SECRET_ID") => secrets
                        .iter()
                        .any(|arn| arn == value || arn.contains(&format!(":secret:{value}-"))),
                    v if v.ends_with("_INSTANCE_PROFILE") => profiles
                        .iter()
                        .any(|name| name == value || value.ends_with(&format!(":instance-profile/{name}"))),
                    v if v.ends_with("_STATE_MACHINE_ARN") => machine_arns.contains(value),
                    "NOTIFICATION_TOPIC_ARN" => topics.contains(value),
                    "CLOUDFRONT_DISTRIBUTION_ID" => distributions.contains(value),
                    _ => !value.is_empty() && !value.contains("Fn::") && !value.contains("${"),
                };
            if !resolved {
                problems.push(format!("{name}: {variable}={value:?} names nothing the stack made"));
            }
        }
        if key_name_empty && function.environment.contains_key("WORKER_KEY_NAME") {
            problems.push(format!(
                "{name}: WORKER_KEY_NAME is set although the key name parameter is empty"
            ));
        }
        if function.environment.contains_key("AWS_REGION") {
            problems.push(format!("{name}: sets AWS_REGION, which Lambda reserves"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_configurations_load_from_the_deployed_environment(&stack.functions);
    assert_the_schedule_starts_one_nightly_a_day_when_the_source_moved(&moto, &stack).await;

    // The four machines, named as the spec says, with every placeholder substituted.
    for machine in [
        "hhvm-build",
        "hhvm-publish-release",
        "hhvm-build-and-publish",
        "hhvm-build-and-publish-multi",
    ] {
        let arn = stack
            .state_machines
            .get(machine)
            .unwrap_or_else(|| panic!("{machine} not deployed: {:?}", stack.state_machines));
        let described = aws(
            &moto,
            &["stepfunctions", "describe-state-machine", "--state-machine-arn", arn],
        );
        let definition = described["definition"].as_str().unwrap();
        assert!(
            !definition.contains("${"),
            "{machine} keeps a placeholder: {definition}"
        );
        let function_arns: BTreeSet<&str> = stack.functions.iter().map(|f| f.arn.as_str()).collect();
        let definition: Value = serde_json::from_str(definition).unwrap();
        for resource in task_resources(&definition) {
            assert!(
                !resource.starts_with("arn:aws:lambda:") || function_arns.contains(resource.as_str()),
                "{machine} calls {resource}, not a function of the stack"
            );
        }
    }
}

/// An environment that records which variables a configuration loader read.
struct RecordingEnvironment {
    variables: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl Source for RecordingEnvironment {
    fn get(&self, name: &str) -> Option<String> {
        self.read.borrow_mut().insert(name.to_string());
        self.variables.get(name).cloned()
    }
}

type Loader = fn(&RecordingEnvironment) -> Result<(), PipelineError>;

/// Every function's configuration loader, by the name it is deployed under.
fn configuration_loaders() -> Vec<(&'static str, Loader)> {
    fn load<F: Function>(environment: &RecordingEnvironment) -> Result<(), PipelineError> {
        F::configuration(environment).map(drop)
    }
    vec![
        (
            get_build_version::GetBuildVersion::NAME,
            load::<get_build_version::GetBuildVersion>,
        ),
        (
            have_source_tarball::HaveSourceTarball::NAME,
            load::<have_source_tarball::HaveSourceTarball>,
        ),
        (
            get_instances_state::GetInstancesState::NAME,
            load::<get_instances_state::GetInstancesState>,
        ),
        (
            terminate_instances::TerminateInstances::NAME,
            load::<terminate_instances::TerminateInstances>,
        ),
        (shift_version::ShiftVersion::NAME, load::<shift_version::ShiftVersion>),
        (
            build_source_tarball::BuildSourceTarball::NAME,
            load::<build_source_tarball::BuildSourceTarball>,
        ),
        (
            build_binary_packages::BuildBinaryPackages::NAME,
            load::<build_binary_packages::BuildBinaryPackages>,
        ),
        (
            update_repositories::UpdateRepositories::NAME,
            load::<update_repositories::UpdateRepositories>,
        ),
        (
            publish_release_source::PublishReleaseSource::NAME,
            load::<publish_release_source::PublishReleaseSource>,
        ),
        (
            start_single_build::StartSingleBuild::NAME,
            load::<start_single_build::StartSingleBuild>,
        ),
        (
            start_multiple_builds::StartMultipleBuilds::NAME,
            load::<start_multiple_builds::StartMultipleBuilds>,
        ),
        (
            publish_single_release::PublishSingleRelease::NAME,
            load::<publish_single_release::PublishSingleRelease>,
        ),
        (
            get_state_machine_executions_state::GetStateMachineExecutionsState::NAME,
            load::<get_state_machine_executions_state::GetStateMachineExecutionsState>,
        ),
        (
            invalidate_repository_metadata_on_cloudfront::InvalidateRepositoryMetadataOnCloudfront::NAME,
            load::<invalidate_repository_metadata_on_cloudfront::InvalidateRepositoryMetadataOnCloudfront>,
        ),
        (
            create_s3_index_html::CreateS3IndexHtml::NAME,
            load::<create_s3_index_html::CreateS3IndexHtml>,
        ),
        (
            get_build_status::GetBuildStatus::NAME,
            load::<get_build_status::GetBuildStatus>,
        ),
        (start_nightly::StartNightly::NAME, load::<start_nightly::StartNightly>),
        (
            notify_execution_failure::NotifyExecutionFailure::NAME,
            load::<notify_execution_failure::NotifyExecutionFailure>,
        ),
        (
            clean_up_after_execution::CleanUpAfterExecution::NAME,
            load::<clean_up_after_execution::CleanUpAfterExecution>,
        ),
    ]
}

/// Each deployed function's configuration loads from exactly the environment the template gives
/// it, and reads every variable of it: the template sets nothing a function does not read.
fn assert_configurations_load_from_the_deployed_environment(functions: &[deploy::DeployedFunction]) {
    let loaders = configuration_loaders();
    let mut problems = Vec::new();
    for function in functions {
        let Some((_, load)) = loaders.iter().find(|(name, _)| *name == function.name) else {
            problems.push(format!(
                "{}: no configuration loader registered in this test",
                function.name
            ));
            continue;
        };
        let environment = RecordingEnvironment {
            variables: function.environment.clone(),
            read: RefCell::new(BTreeSet::new()),
        };
        if let Err(error) = load(&environment) {
            problems.push(format!(
                "{}: {error} (environment {:?})",
                function.name, function.environment
            ));
        }
        let read = environment.read.borrow();
        for variable in function.environment.keys().filter(|v| !read.contains(*v)) {
            problems.push(format!(
                "{}: the template sets {variable}, which it never reads",
                function.name
            ));
        }
    }
    for (name, _) in &loaders {
        if !functions.iter().any(|f| f.name == *name) {
            problems.push(format!("{name}: not deployed by the template"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_configuration_check_catches_unread_and_unusable_variables() {
    let function = |name: &str, variables: &[(&str, &str)]| deploy::DeployedFunction {
        logical_id: String::new(),
        name: name.to_string(),
        arn: String::new(),
        environment: variables.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let unread = std::panic::catch_unwind(|| {
        assert_configurations_load_from_the_deployed_environment(&[function("shift-version", &[("EXTRA", "1")])])
    })
    .unwrap_err();
    let message = unread.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("shift-version: the template sets EXTRA, which it never reads"),
        "{message}"
    );
    assert!(
        message.contains("hhvm-get-build-version: not deployed by the template"),
        "{message}"
    );
    let unusable = std::panic::catch_unwind(|| {
        assert_configurations_load_from_the_deployed_environment(&[function(
            "hhvm-start-single-build",
            &[("BUILD_STATE_MACHINE_ARN", "hhvm-build")],
        )])
    })
    .unwrap_err();
    let message = unusable.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("hhvm-start-single-build: configuration variable BUILD_STATE_MACHINE_ARN"),
        "{message}"
    );
}

/// moto never fires schedules: the test reads the deployed schedule back and delivers its input
/// to its target as EventBridge Scheduler would, retries included.
async fn assert_the_schedule_starts_one_nightly_a_day_when_the_source_moved(moto: &MotoServer, stack: &DeployedStack) {
    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const MOVED: &str = "89abcdef0123456789abcdef0123456789abcdef";
    let schedule = aws(moto, &["scheduler", "get-schedule", "--name", "hhvm-nightly"]);
    let trigger = stack
        .functions
        .iter()
        .find(|f| f.name == "hhvm-start-nightly")
        .expect("hhvm-start-nightly is deployed");
    assert_eq!(schedule["Target"]["Arn"], trigger.arn.as_str(), "the schedule's target");
    let input = schedule["Target"]["Input"]
        .as_str()
        .expect("the schedule has an input")
        .to_string();
    let schedule_arn = schedule["Arn"].as_str().unwrap_or_default().to_string();
    let event = |time: &str, attempt: u32| -> Value {
        let text = input
            .replace("<aws.scheduler.scheduled-time>", time)
            .replace("<aws.scheduler.execution-id>", &format!("attempt-{attempt}"))
            .replace("<aws.scheduler.attempt-number>", &attempt.to_string())
            .replace("<aws.scheduler.schedule-arn>", &schedule_arn);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("the schedule's input is not JSON: {e}: {text}"))
    };
    let environment = trigger.environment.clone();
    let config = start_nightly::Config::from_source(&move |name: &str| environment.get(name).cloned())
        .unwrap_or_else(|e| panic!("{e}"));
    let sdk_config = pipeline_testing::sdk_config_for(moto.endpoint()).await;
    let s3 = pipeline_aws::s3_client(&sdk_config);
    let sfn = aws_sdk_sfn::Client::new(&sdk_config);
    // The head commit is given: the deployed refs URL is GitHub's, which a test never reads.
    let trigger_with = |event: Value, commit: &'static str| {
        let (s3, sfn, config) = (s3.clone(), sfn.clone(), config.clone());
        async move {
            start_nightly::handle(&s3, &sfn, &config, event, commit)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };

    let first = trigger_with(event("2026-12-01T03:00:00Z", 1), COMMIT).await;
    let retried = trigger_with(event("2026-12-01T03:00:00Z", 2), COMMIT).await;
    assert_eq!(first["started"], true, "{first}");
    assert_eq!(first["executionName"], "nightly-2026-12-01", "{first}");
    assert_eq!(
        retried["executionArn"], first["executionArn"],
        "a retry finds the first attempt's execution"
    );
    let machine = &stack.state_machines["hhvm-build-and-publish"];
    let executions = aws(
        moto,
        &["stepfunctions", "list-executions", "--state-machine-arn", machine],
    );
    let names: Vec<&str> = executions["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["nightly-2026-12-01"],
        "one execution for the day, however often it was triggered"
    );

    // That nightly is published; the next day's source has not moved: nothing starts.
    let scratch = &stack.outputs["ScratchBucketName"];
    s3.put_object()
        .bucket(scratch)
        .key("markers/2026.12.01/update-repositories.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let unmoved = trigger_with(event("2026-12-02T03:00:00Z", 1), COMMIT).await;
    assert_eq!(unmoved["started"], false, "{unmoved}");
    assert_eq!(unmoved["lastPublishedNightly"], "2026.12.01", "{unmoved}");
    let mut forced = event("2026-12-02T03:00:00Z", 1);
    forced["detail"]["force"] = Value::Bool(true);
    let forced = trigger_with(forced, COMMIT).await;
    assert_eq!(forced["started"], true, "force builds an unmoved source: {forced}");
    let moved = trigger_with(event("2026-12-03T03:00:00Z", 1), MOVED).await;
    assert_eq!(moved["started"], true, "a moved source builds: {moved}");
}

/// Whether a template value is `Fn::If` with `AWS::NoValue` as one of its branches.
fn may_be_left_out(value: &Value) -> bool {
    let no_value = serde_json::json!({"Ref": "AWS::NoValue"});
    value["Fn::If"]
        .as_array()
        .is_some_and(|branches| branches.iter().skip(1).any(|branch| *branch == no_value))
}

/// Every Task `Resource` of a definition (Map and Parallel branches included).
fn task_resources(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => {
            let own = (map.get("Type") == Some(&Value::from("Task")))
                .then(|| map.get("Resource").and_then(Value::as_str).map(String::from))
                .flatten();
            own.into_iter().chain(map.values().flat_map(task_resources)).collect()
        }
        Value::Array(items) => items.iter().flat_map(task_resources).collect(),
        _ => Vec::new(),
    }
}
