//! Children that really finish, run by moto's state-machine engine (execute mode), on
//! this process's executing server: the shared one keeps executions where they were started.

use aws_sdk_sfn::Client;
use pipeline_testing::MotoServer;
use pipeline_testing::sfn::{FAIL_ONLY, PASS_ONLY, create_state_machine, execution_count, wait_until_finished};
use serde_json::{Value, json};

async fn sfn() -> Client {
    let server = MotoServer::shared_executing();
    Client::new(&server.sdk_config().await)
}

async fn start_and_finish(sfn: &Client, machine: &str, input: &Value) -> String {
    let output = start_single_build::handle(sfn, machine, input.clone()).await.unwrap();
    let arn = output["stepFunctionExecutions"][0].as_str().unwrap().to_string();
    wait_until_finished(sfn, &arn).await;
    arn
}

#[tokio::test]
async fn a_succeeded_child_is_found_again_not_redone() {
    let sfn = sfn().await;
    let machine = create_state_machine(&sfn, "hhvm-build", PASS_ONLY).await;
    let input = json!({"executionName": "done-1", "version": "4.168.2"});
    let first = start_and_finish(&sfn, &machine, &input).await;
    let again = start_and_finish(&sfn, &machine, &input).await;
    assert_eq!(again, first);
    assert_eq!(execution_count(&sfn, &machine).await, 1);
}

#[tokio::test]
async fn after_a_failed_child_each_retry_starts_the_next_attempt() {
    let sfn = sfn().await;
    let machine = create_state_machine(&sfn, "hhvm-build", FAIL_ONLY).await;
    let input = json!({"executionName": "failing-1", "version": "4.168.2"});
    let mut arns = Vec::new();
    for _ in 0..3 {
        arns.push(start_and_finish(&sfn, &machine, &input).await);
    }
    assert!(arns[0].ends_with(":failing-1-build-4_168_2"), "{}", arns[0]);
    assert!(arns[1].ends_with(":failing-1-build-4_168_2-r2"), "{}", arns[1]);
    assert!(arns[2].ends_with(":failing-1-build-4_168_2-r3"), "{}", arns[2]);
    assert_eq!(execution_count(&sfn, &machine).await, 3);
}
