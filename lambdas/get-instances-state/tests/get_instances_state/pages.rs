//! Pagination, which the emulator does not exercise, through the real SDK paginator with
//! aws-smithy-mocks answering two pages.

use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::types::{Instance, InstanceState, InstanceStateName, Reservation};
use aws_smithy_mocks::mock;
use pipeline_testing::mocked_client;
use pipeline_testing::mocks::match_any;
use serde_json::json;

fn page(id: &str, state: InstanceStateName, next_token: Option<&str>) -> DescribeInstancesOutput {
    let instance = Instance::builder()
        .instance_id(id)
        .state(InstanceState::builder().name(state).build())
        .build();
    DescribeInstancesOutput::builder()
        .reservations(Reservation::builder().instances(instance).build())
        .set_next_token(next_token.map(str::to_string))
        .build()
}

#[tokio::test]
async fn every_page_is_read() {
    let first = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|request| request.next_token().is_none())
        .then_output(|| page("i-00000001", InstanceStateName::Terminated, Some("page-2")));
    let second = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|request| request.next_token() == Some("page-2"))
        .then_output(|| page("i-00000002", InstanceStateName::Running, None));
    let ec2 = mocked_client!(aws_sdk_ec2, match_any(&[&first, &second]));

    let output = get_instances_state::handle(&ec2, json!({"instances": ["i-00000001", "i-00000002"]}))
        .await
        .unwrap();
    assert_eq!(
        output["instanceStates"],
        json!({"i-00000001": "terminated", "i-00000002": "running"})
    );
    assert_eq!(output["allInstancesFinished"], false);
    assert_eq!(first.num_calls(), 1);
    assert_eq!(second.num_calls(), 1);
}
