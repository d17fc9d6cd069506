//! Spot interruptions, which plain moto does not produce (its terminations are all the user's):
//! the real SDK client with aws-smithy-mocks answering what EC2 describes for a reclaimed spot
//! instance. The local stack's moto produces them too (tests/moto/server.py, patch 8), and its
//! interruption scenario runs them through the machine.

use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::types::{Instance, InstanceState, InstanceStateName, Reservation, StateReason};
use aws_smithy_mocks::mock;
use pipeline_testing::mocked_client;
use pipeline_testing::mocks::match_any;
use serde_json::json;

fn instance(id: &str, state: InstanceStateName, reason: &str) -> Instance {
    Instance::builder()
        .instance_id(id)
        .state(InstanceState::builder().name(state).build())
        .state_reason(
            StateReason::builder()
                .code(reason)
                .message(format!("{reason}: …"))
                .build(),
        )
        .build()
}

#[tokio::test]
async fn instances_ec2_reclaimed_are_reported_interrupted_and_finished() {
    let described = mock!(aws_sdk_ec2::Client::describe_instances).then_output(|| {
        DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .instances(instance(
                        "i-00000001",
                        InstanceStateName::Terminated,
                        "Server.SpotInstanceTermination",
                    ))
                    .instances(instance(
                        "i-00000002",
                        InstanceStateName::Terminated,
                        "Client.InstanceInitiatedShutdown",
                    ))
                    .instances(instance(
                        "i-00000003",
                        InstanceStateName::ShuttingDown,
                        "Server.SpotInstanceTermination",
                    ))
                    .build(),
            )
            .build()
    });
    let ec2 = mocked_client!(aws_sdk_ec2, match_any(&[&described]));

    let output = get_instances_state::handle(
        &ec2,
        json!({"instances": ["i-00000001", "i-00000002", "i-00000003"], "poll": {"count": 7}}),
    )
    .await
    .unwrap();
    assert_eq!(
        output["allInstancesFinished"], true,
        "an interrupted instance is finished"
    );
    assert_eq!(
        output["interruptedInstances"],
        json!(["i-00000001", "i-00000003"]),
        "the worker that powered itself off was not interrupted"
    );
    assert_eq!(output["instanceStates"]["i-00000003"], "shutting-down");
    assert_eq!(described.num_calls(), 1);
}

#[tokio::test]
async fn a_reclaim_notice_on_a_running_instance_is_no_interruption_yet() {
    // EC2 may set the reason before the instance leaves `running`; it is not finished.
    let described = mock!(aws_sdk_ec2::Client::describe_instances).then_output(|| {
        DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .instances(instance(
                        "i-00000001",
                        InstanceStateName::Running,
                        "Server.SpotInstanceTermination",
                    ))
                    .build(),
            )
            .build()
    });
    let ec2 = mocked_client!(aws_sdk_ec2, match_any(&[&described]));
    let output = get_instances_state::handle(&ec2, json!({"instances": ["i-00000001"]}))
        .await
        .unwrap();
    assert_eq!(output["allInstancesFinished"], false);
    assert_eq!(output["interruptedInstances"], json!([]));
}
