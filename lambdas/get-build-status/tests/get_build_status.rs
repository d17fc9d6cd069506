//! get-build-status against moto's S3 through the real SDK client: every state, read from the
//! markers and logs the workers write.

use aws_sdk_s3::primitives::ByteStream;
use get_build_status::{Config, handle_on};
use pipeline_core::Version;
use pipeline_core::s3::Buckets;
use pipeline_testing::http::serve_current_targets;
use pipeline_testing::{MotoServer, create_bucket, unreachable_sdk_config};
use serde_json::{Value, json};

/// A CURRENT_TARGETS_URL where nothing answers: tests that name their distros never read it.
const NOTHING_LISTENS: &str = "http://127.0.0.1:9/{branch}/CURRENT_TARGETS";

struct Fixture {
    s3: aws_sdk_s3::Client,
    config: Config,
}

impl Fixture {
    async fn new(current_targets_url: Option<String>) -> Fixture {
        let current_targets_url = current_targets_url.unwrap_or_else(|| NOTHING_LISTENS.to_string());
        let s3 = pipeline_aws::s3_client(&MotoServer::shared().sdk_config().await);
        let downloads = create_bucket(&s3, "downloads").await.parse().unwrap();
        let scratch = create_bucket(&s3, "scratch").await.parse().unwrap();
        Fixture {
            s3,
            config: Config {
                buckets: Buckets { downloads, scratch },
                current_targets_url,
            },
        }
    }

    async fn put(&self, public: bool, key: &str, body: &str) {
        let bucket = if public {
            &self.config.buckets.downloads
        } else {
            &self.config.buckets.scratch
        };
        self.s3
            .put_object()
            .bucket(bucket.as_str())
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }

    async fn status(&self, input: Value) -> Value {
        handle_on(&self.s3, &self.config, input, today()).await.unwrap()
    }

    fn scratch(&self) -> &str {
        self.config.buckets.scratch.as_str()
    }
}

fn today() -> Version {
    "2026.11.21".parse().unwrap()
}

fn marker(version: &str, distro: &str, files: &[&str]) -> String {
    let files: Vec<Value> = files
        .iter()
        .map(|name| json!({"name": name, "sha256": "0".repeat(64)}))
        .collect();
    json!({"version": version, "distro": distro, "packageVersion": format!("{version}-2"), "files": files}).to_string()
}

#[tokio::test]
async fn each_distro_is_published_built_failed_or_not_built() {
    let fixture = Fixture::new(None).await;
    fixture.put(true, "source/hhvm-4.168.2.tar.gz", "tarball").await;
    // Published, with a PKGVER the original's `-1~codename` guess would have missed.
    let bookworm_debs = [
        "hhvm_4.168.2-2~bookworm_amd64.deb",
        "hhvm-dev_4.168.2-2~bookworm_amd64.deb",
    ];
    let mut bookworm_files = bookworm_debs.to_vec();
    bookworm_files.push("hhvm_4.168.2-2~bookworm_amd64.changes");
    fixture
        .put(
            false,
            "markers/4.168.2/binary-package/debian-12-bookworm.json",
            &marker("4.168.2", "debian-12-bookworm", &bookworm_files),
        )
        .await;
    for deb in bookworm_debs {
        fixture
            .put(true, &format!("debian/pool/main/h/hhvm/{deb}"), "deb")
            .await;
    }
    // Built: marker present, the package not yet in the pool.
    fixture
        .put(
            false,
            "markers/4.168.2/binary-package/ubuntu-22.04-jammy.json",
            &marker("4.168.2", "ubuntu-22.04-jammy", &["hhvm_4.168.2-2~jammy_amd64.deb"]),
        )
        .await;
    // Failed: no marker, two attempts' logs.
    fixture
        .put(
            false,
            "logs/4.168.2/binary-package/debian-11-bullseye/i-0001.log",
            "first",
        )
        .await;
    fixture
        .put(
            false,
            "logs/4.168.2/binary-package/debian-11-bullseye/i-0002.log",
            "second",
        )
        .await;
    // Not built: nothing at all for ubuntu-24.04-noble.
    let input = json!({
        "version": "4.168.2",
        "distros": ["debian-12-bookworm", "ubuntu-22.04-jammy", "debian-11-bullseye", "ubuntu-24.04-noble"]
    });
    let output = fixture.status(input).await;

    assert_eq!(output["version"], "4.168.2");
    assert_eq!(output["packagingBranch"], "HHVM-4.168");
    assert_eq!(output["success"], false);
    assert_eq!(output["published"], json!(["source", "debian-12-bookworm"]));
    assert_eq!(output["built_not_published"], json!(["ubuntu-22.04-jammy"]));
    assert_eq!(output["failed"], json!(["debian-11-bullseye"]));
    assert_eq!(output["not_built"], json!(["ubuntu-24.04-noble"]));

    let bookworm = &output["artifacts"]["debian-12-bookworm"];
    assert_eq!(bookworm["status"], "published");
    assert_eq!(bookworm["packageVersion"], "4.168.2-2");
    assert_eq!(
        bookworm["packages"],
        json!([
            "debian/pool/main/h/hhvm/hhvm_4.168.2-2~bookworm_amd64.deb",
            "debian/pool/main/h/hhvm/hhvm-dev_4.168.2-2~bookworm_amd64.deb"
        ])
    );
    let jammy = &output["artifacts"]["ubuntu-22.04-jammy"];
    assert_eq!(
        jammy["packages"],
        json!(["ubuntu/pool/main/h/hhvm/hhvm_4.168.2-2~jammy_amd64.deb"])
    );
    assert_eq!(
        jammy["marker"],
        json!({"bucket": fixture.scratch(), "path": "markers/4.168.2/binary-package/ubuntu-22.04-jammy.json"})
    );
    let bullseye = &output["artifacts"]["debian-11-bullseye"];
    assert_eq!(bullseye["status"], "failed");
    assert_eq!(
        bullseye["log"]["path"],
        "logs/4.168.2/binary-package/debian-11-bullseye/i-0002.log"
    );
    assert_eq!(
        output["artifacts"]["ubuntu-24.04-noble"],
        json!({"status": "not_built"})
    );
}

#[tokio::test]
async fn a_marker_that_is_not_json_is_a_failure_with_its_problem() {
    let fixture = Fixture::new(None).await;
    fixture
        .put(
            false,
            "markers/4.168.2/binary-package/debian-12-bookworm.json",
            "not json",
        )
        .await;
    let output = fixture
        .status(json!({"version": "4.168.2", "distros": ["debian-12-bookworm"]}))
        .await;
    let bookworm = &output["artifacts"]["debian-12-bookworm"];
    assert_eq!(bookworm["status"], "failed");
    assert!(
        bookworm["problem"].as_str().is_some_and(|p| !p.is_empty()),
        "{bookworm}"
    );
}

#[tokio::test]
async fn the_source_tarball_has_the_same_four_states() {
    // Published nightly: in the download bucket.
    let fixture = Fixture::new(None).await;
    fixture
        .put(true, "source/nightlies/hhvm-nightly-2026.11.20.tar.gz", "tarball")
        .await;
    let output = fixture.status(json!({"version": "2026.11.20", "distros": []})).await;
    assert_eq!(output["artifacts"]["source"]["status"], "published");
    assert_eq!(output["packagingBranch"], "master");

    // Built release: its marker exists, the public copy does not yet.
    fixture.put(false, "markers/4.168.2/source-tarball.json", "{}").await;
    let output = fixture.status(json!({"version": "4.168.2", "distros": []})).await;
    assert_eq!(output["artifacts"]["source"]["status"], "built_not_published");
    assert_eq!(
        output["artifacts"]["source"]["location"],
        json!({"bucket": fixture.config.buckets.downloads.as_str(), "path": "source/hhvm-4.168.2.tar.gz"})
    );

    // Failed: only a log.
    fixture
        .put(false, "logs/4.167.0/source-tarball/i-0009.log", "boom")
        .await;
    let output = fixture.status(json!({"version": "4.167.0", "distros": []})).await;
    assert_eq!(output["artifacts"]["source"]["status"], "failed");
    assert_eq!(
        output["artifacts"]["source"]["log"]["path"],
        "logs/4.167.0/source-tarball/i-0009.log"
    );

    // Not built: nothing. Without a version, today's nightly is reported.
    let output = fixture.status(json!({"distros": []})).await;
    assert_eq!(output["version"], "2026.11.21");
    assert_eq!(output["artifacts"]["source"]["status"], "not_built");
    assert_eq!(output["not_built"], json!(["source"]));
}

#[tokio::test]
async fn without_distros_the_branch_current_targets_are_read() {
    let fixture = Fixture::new(Some(serve_current_targets(
        "200 OK",
        "debian-12-bookworm\nubuntu-24.04-noble\n",
    )))
    .await;
    let output = fixture.status(json!({"version": "4.168.2"})).await;
    let names: Vec<&String> = output["artifacts"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["source", "debian-12-bookworm", "ubuntu-24.04-noble"]);
}

#[tokio::test]
async fn required_builds_fail_naming_what_did_not_build_with_its_log() {
    let fixture = Fixture::new(None).await;
    fixture.put(false, "hhvm-4.168.2.tar.gz", "tarball").await;
    fixture.put(false, "markers/4.168.2/source-tarball.json", "{}").await;
    fixture
        .put(
            false,
            "markers/4.168.2/binary-package/debian-12-bookworm.json",
            &marker("4.168.2", "debian-12-bookworm", &["hhvm_4.168.2-2~bookworm_amd64.deb"]),
        )
        .await;
    fixture
        .put(
            false,
            "logs/4.168.2/binary-package/ubuntu-24.04-noble/i-0003.log",
            "boom",
        )
        .await;
    let input =
        json!({"version": "4.168.2", "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"], "require": "built"});
    let error = handle_on(&fixture.s3, &fixture.config, input, today())
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "BuildFailed");
    let message = error.to_string();
    assert!(message.contains("ubuntu-24.04-noble (failed)"), "{message}");
    assert!(
        message.contains("logs/4.168.2/binary-package/ubuntu-24.04-noble/i-0003.log"),
        "{message}"
    );
    assert!(
        !message.contains("debian-12-bookworm"),
        "a built distro is not blamed: {message}"
    );

    // Built is not published: the same artifacts fail the stricter requirement.
    let input = json!({"version": "4.168.2", "distros": ["debian-12-bookworm"], "require": "published"});
    let error = handle_on(&fixture.s3, &fixture.config, input, today())
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "PublishFailed");
    assert!(
        error.to_string().contains("debian-12-bookworm (built not published)"),
        "{error}"
    );

    // Met: the report comes back as without `require`.
    let input = json!({"version": "4.168.2", "distros": ["debian-12-bookworm"], "require": "built"});
    let report = fixture.status(input).await;
    assert_eq!(report["built_not_published"], json!(["source", "debian-12-bookworm"]));
}

#[tokio::test]
async fn bad_input_and_missing_configuration_are_typed_errors() {
    // Against an endpoint where nothing listens: a validation error proves no call was made.
    let s3 = pipeline_aws::s3_client(&unreachable_sdk_config().await);
    let config = Config {
        buckets: Buckets {
            downloads: "hhvm-downloads".parse().unwrap(),
            scratch: "hhvm-scratch".parse().unwrap(),
        },
        current_targets_url: NOTHING_LISTENS.to_string(),
    };
    let cases = [
        (json!({"version": "4.1"}), "InvalidVersion", "field `version`"),
        (
            json!({"version": "4.1.0", "distros": ["debian-12-bookworm", "fedora-40-x"]}),
            "InvalidInput",
            "`distros[1]`",
        ),
        (
            json!({"version": "4.1.0", "distros": "debian-12-bookworm"}),
            "InvalidInput",
            "`distros`",
        ),
        (
            json!({"version": "4.1.0", "packagingBranch": "main", "distros": []}),
            "InvalidInput",
            "`packagingBranch`",
        ),
        (
            json!({"version": "4.1.0", "require": "everything", "distros": []}),
            "InvalidInput",
            "`require`",
        ),
        (json!([]), "InvalidInput", "expected a JSON object"),
        (json!({"version": "4.1.0"}), "CurrentTargetsUnavailable", "127.0.0.1:9"),
    ];
    for (input, error_type, expected) in cases {
        let error = handle_on(&s3, &config, input.clone(), today()).await.unwrap_err();
        assert_eq!(error.error_type(), error_type, "{input}: {error}");
        assert!(error.to_string().contains(expected), "{input}: {error}");
    }
}
