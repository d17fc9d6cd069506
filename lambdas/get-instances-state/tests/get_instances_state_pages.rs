//! Pagination, which the emulator does not exercise, through the real SDK paginator with
//! aws-smithy-mocks answering two pages.

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::types::{Instance, InstanceState, InstanceStateName, Reservation};
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, create_mock_http_client, mock};
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
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "mock"))
        .http_client(create_mock_http_client())
        .interceptor(
            MockResponseInterceptor::new()
                .rule_mode(RuleMode::MatchAny)
                .with_rule(&first)
                .with_rule(&second),
        )
        .build();
    let ec2 = aws_sdk_ec2::Client::from_conf(config);

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
