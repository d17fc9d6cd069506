//! start-nightly against real S3 and Step Functions APIs (moto) through the real SDK clients,
//! and the source's refs read over HTTP from a local server.

use pipeline_testing::sfn::{create_state_machine, execution_count};
use pipeline_testing::{MotoServer, create_bucket, http::serve_current_targets};
use serde_json::json;
use start_nightly::Config;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// A state machine that succeeds at once.
const PASS: &str = r#"{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}"#;

async fn fixture() -> (aws_sdk_s3::Client, aws_sdk_sfn::Client, Config) {
    let sdk_config = MotoServer::shared().sdk_config().await;
    let s3 = pipeline_aws::s3_client(&sdk_config);
    let sfn = aws_sdk_sfn::Client::new(&sdk_config);
    let scratch = create_bucket(&s3, "scratch").await;
    let machine = create_state_machine(&sfn, "hhvm-build-and-publish", PASS).await;
    let config = Config {
        state_machine_arn: machine,
        scratch: scratch.parse().unwrap(),
        refs_url: "http://127.0.0.1:9/unused".into(),
        branch: "master".into(),
    };
    (s3, sfn, config)
}

#[tokio::test]
async fn the_days_nightly_is_started_once_and_its_source_recorded() {
    let (s3, sfn, config) = fixture().await;
    let event = json!({"time": "2026-12-01T03:00:00Z", "detail": {}});
    let first = start_nightly::handle(&s3, &sfn, &config, event.clone(), COMMIT)
        .await
        .unwrap();
    let again = start_nightly::handle(&s3, &sfn, &config, event, COMMIT).await.unwrap();
    assert_eq!(first["started"], true, "{first}");
    assert_eq!(again["executionArn"], first["executionArn"]);
    assert_eq!(execution_count(&sfn, &config.state_machine_arn).await, 1);
    let record = s3
        .get_object()
        .bucket(config.scratch.as_str())
        .key("nightly-sources/2026.12.01.json")
        .send()
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&record.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(record, json!({"commit": COMMIT, "branch": "master"}));
}

#[tokio::test]
async fn an_unmoved_source_after_a_published_nightly_starts_nothing() {
    let (s3, sfn, config) = fixture().await;
    let yesterday = json!({"time": "2026-11-30T03:00:00Z"});
    start_nightly::handle(&s3, &sfn, &config, yesterday, COMMIT)
        .await
        .unwrap();
    // Not yet published: today builds again.
    let unpublished = json!({"time": "2026-12-01T03:00:00Z"});
    let answer = start_nightly::handle(&s3, &sfn, &config, unpublished, COMMIT)
        .await
        .unwrap();
    assert_eq!(
        answer["started"], true,
        "the last nightly was never published: {answer}"
    );

    s3.put_object()
        .bucket(config.scratch.as_str())
        .key("markers/2026.12.01/update-repositories.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let tomorrow = json!({"time": "2026-12-02T03:00:00Z"});
    let answer = start_nightly::handle(&s3, &sfn, &config, tomorrow, COMMIT)
        .await
        .unwrap();
    assert_eq!(answer["started"], false, "{answer}");
    assert!(answer["skipped"].as_str().unwrap().contains("2026.12.01"), "{answer}");
    assert_eq!(execution_count(&sfn, &config.state_machine_arn).await, 2);
}

#[tokio::test]
async fn the_head_commit_is_read_from_the_refs_over_http() {
    let refs =
        "001e# service=git-upload-pack\n0000003f0123456789abcdef0123456789abcdef01234567 refs/heads/master\n0000";
    let url = serve_current_targets("200 OK", refs).replace("{branch}", "master");
    assert_eq!(
        start_nightly::refs::fetch_head_commit(&url, "master").await.unwrap(),
        COMMIT
    );
    let url = serve_current_targets("200 OK", refs).replace("{branch}", "master");
    let error = start_nightly::refs::fetch_head_commit(&url, "main").await.unwrap_err();
    assert_eq!(error.error_type(), "SourceUnavailable", "{error}");
    assert!(error.to_string().contains("refs/heads/main"), "{error}");
}

#[tokio::test]
async fn a_bad_poll_setting_starts_nothing_and_records_nothing() {
    let (s3, sfn, config) = fixture().await;
    let event = json!({"time": "2026-12-02T03:00:00Z", "detail": {"force": true, "pollLimit": 100000}});
    let error = start_nightly::handle(&s3, &sfn, &config, event, COMMIT)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "InvalidInput");
    assert!(error.to_string().contains("pollLimit"), "{error}");
    assert_eq!(execution_count(&sfn, &config.state_machine_arn).await, 0);
    let listed = s3
        .list_objects_v2()
        .bucket(config.scratch.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "no source record");
}
