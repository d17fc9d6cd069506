//! `hhvmctl redrive` at the SDK boundary: the emulator has no redrive, so Step Functions'
//! answers are `aws-smithy-mocks` rules, and what is checked is the call the command makes.
//! And, with no AWS answering at all, that a command's arguments are refused before the stack
//! is read.

use aws_sdk_cloudformation::types::{Output, Stack, StackStatus};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::DateTime;
use clap::Parser;
use hhvmctl::commands::{Clients, run};
use hhvmctl::{Cli, CliError};
use pipeline_testing::mocked_client;
use pipeline_testing::mocks::{http_response, match_any};

const MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:hhvm-build";
const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:hhvm-build:failed-run";

/// The clients of a stack named hhvm-pipeline with one machine, Step Functions answering with
/// `sfn_rules`; nothing is sent anywhere.
fn clients(sfn_rules: &[&Rule]) -> Clients {
    let stack = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_output(|| {
        let stack = Stack::builder()
            .stack_name("hhvm-pipeline")
            .creation_time(DateTime::from_secs(0))
            .stack_status(StackStatus::CreateComplete)
            .outputs(
                Output::builder()
                    .output_key("BuildStateMachineArn")
                    .output_value(MACHINE)
                    .build(),
            )
            .build();
        aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput::builder()
            .stacks(stack)
            .build()
    });
    Clients {
        cloudformation: mocked_client!(aws_sdk_cloudformation, match_any(&[&stack])),
        sfn: mocked_client!(aws_sdk_sfn, match_any(sfn_rules)),
        lambda: mocked_client!(aws_sdk_lambda, match_any(&[])),
        s3: mocked_client!(aws_sdk_s3, match_any(&[])),
    }
}

fn described() -> Rule {
    mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(|request| request.execution_arn() == Some(EXECUTION))
        .then_output(|| {
            aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput::builder()
                .execution_arn(EXECUTION)
                .state_machine_arn(MACHINE)
                .status(ExecutionStatus::Failed)
                .start_date(DateTime::from_secs(0))
                .build()
                .expect("a described execution")
        })
}

#[tokio::test]
async fn a_failed_execution_given_by_name_is_redriven_by_its_arn() {
    let described = described();
    let redriven = mock!(aws_sdk_sfn::Client::redrive_execution)
        .match_requests(|request| request.execution_arn() == Some(EXECUTION))
        .then_output(|| {
            aws_sdk_sfn::operation::redrive_execution::RedriveExecutionOutput::builder()
                .redrive_date(DateTime::from_secs(60))
                .build()
                .expect("a redrive answer")
        });
    let cli = Cli::parse_from(["hhvmctl", "redrive", "failed-run", "--detach"]);
    run(cli, &clients(&[&described, &redriven]))
        .await
        .expect("the redrive is asked for");
    assert_eq!(redriven.num_calls(), 1, "RedriveExecution with the execution's ARN");
}

#[tokio::test]
async fn a_refused_redrive_is_an_aws_error_that_says_why() {
    let described = described();
    // Step Functions' own answer for an execution it cannot redrive (awsJson1_0).
    let refused = mock!(aws_sdk_sfn::Client::redrive_execution).then_http_response(|| {
        http_response(
            400,
            r#"{"__type":"ExecutionNotRedrivable","message":"Execution is RUNNING and cannot be redriven"}"#,
        )
    });
    let cli = Cli::parse_from(["hhvmctl", "redrive", EXECUTION, "--detach"]);
    let error = run(cli, &clients(&[&described, &refused])).await.unwrap_err();
    assert!(matches!(error, CliError::Aws { .. }), "{error:?}");
    assert!(error.to_string().contains("cannot be redriven"), "{error}");
    assert_eq!(
        format!("{:?}", error.exit_code()),
        format!("{:?}", std::process::ExitCode::from(4))
    );
}

#[tokio::test]
async fn an_endpoint_without_redrive_says_so_and_what_works_instead() {
    let described = described();
    // What moto answers for an operation it lacks: an HTML page, no AWS error.
    let unknown = mock!(aws_sdk_sfn::Client::redrive_execution).then_http_response(|| {
        http_response(
            500,
            "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n",
        )
    });
    let cli = Cli::parse_from(["hhvmctl", "redrive", EXECUTION, "--detach"]);
    let error = run(cli, &clients(&[&described, &unknown])).await.unwrap_err();
    assert!(matches!(error, CliError::Aws { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("the endpoint answered HTTP 500 without an AWS error: it has no RedriveExecution"),
        "{text}"
    );
    assert!(text.contains("`hhvmctl rerun`"), "{text}");
}

#[tokio::test]
async fn bad_arguments_are_refused_before_the_stack_is_read() {
    // No rule answers anything: a call to CloudFormation would fail as an AWS error.
    let nothing_answers = Clients {
        cloudformation: mocked_client!(aws_sdk_cloudformation, match_any(&[])),
        sfn: mocked_client!(aws_sdk_sfn, match_any(&[])),
        lambda: mocked_client!(aws_sdk_lambda, match_any(&[])),
        s3: mocked_client!(aws_sdk_s3, match_any(&[])),
    };
    for arguments in [
        &["hhvmctl", "build", "4.168"][..],
        &["hhvmctl", "publish", "4.168.2", "--distro", "fedora-40-x"],
        &["hhvmctl", "release", "4.168.2", "latest"],
        &["hhvmctl", "plan", "4.168.2.1"],
        &["hhvmctl", "logs", "4.168.2", "--distro", "debian"],
        &["hhvmctl", "invoke", "hhvm-get-build-version", "--payload", "{not json"],
    ] {
        let error = run(Cli::parse_from(arguments), &nothing_answers).await.unwrap_err();
        assert!(matches!(error, CliError::BadArgument(_)), "{arguments:?}: {error:?}");
    }
}
