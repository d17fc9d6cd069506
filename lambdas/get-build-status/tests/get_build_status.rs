//! get-build-status against moto's S3 through the real SDK client: every state, read from the
//! markers and logs the workers write and from apt suites signed by a real `gpg`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use aws_sdk_s3::primitives::ByteStream;
use get_build_status::repository::sha256_hex;
use get_build_status::{Config, handle_on};
use pipeline_core::Version;
use pipeline_core::s3::Buckets;
use pipeline_testing::http::serve_current_targets;
use pipeline_testing::{MotoServer, create_bucket, unique_name, unreachable_sdk_config};
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

/// The worker instance that wrote the markers of `marker`.
const BUILDER: &str = "i-0123456789abcdef0";

/// The SHA-256 a marker states for a file: of its name, so each file has its own.
fn file_sha(name: &str) -> String {
    sha256_hex(name.as_bytes())
}

fn marker(version: &str, distro: &str, files: &[&str]) -> String {
    let files: Vec<Value> = files
        .iter()
        .map(|name| json!({"name": name, "sha256": file_sha(name)}))
        .collect();
    json!({"version": version, "distro": distro, "packageVersion": format!("{version}-2"),
           "instance": BUILDER, "executionName": "build-1", "files": files})
    .to_string()
}

/// A GnuPG key in its own home: what signs the suites, and the public key clients are given.
struct Signer {
    home: PathBuf,
    public_key: String,
}

impl Signer {
    fn new() -> Signer {
        let home = std::env::temp_dir().join(unique_name("gnupg"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let mut signer = Signer {
            home,
            public_key: String::new(),
        };
        signer.gpg(
            &[
                "--passphrase",
                "",
                "--quick-gen-key",
                "Test <test@localhost>",
                "ed25519",
                "sign",
                "never",
            ],
            "",
        );
        signer.public_key = signer.gpg(&["--armor", "--export"], "");
        signer
    }

    fn gpg(&self, args: &[&str], input: &str) -> String {
        let mut child = Command::new("gpg")
            .arg("--batch")
            .arg("--quiet")
            .args(args)
            .env("GNUPGHOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gpg runs");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn clearsign(&self, text: &str) -> String {
        self.gpg(&["--clearsign"], text)
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", &self.home)
            .status();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// A suite's Packages index listing `packages` (`Filename`, `SHA256`).
fn packages_index(packages: &[(String, String)]) -> String {
    packages
        .iter()
        .map(|(filename, sha)| format!("Package: hhvm\nFilename: {filename}\nSize: 3\nSHA256: {sha}\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Fixture {
    /// Publishes `suite` (`debian/bookworm`) as update-repos.sh does: the index by hash and
    /// under its name, and an InRelease signed by `signer` that lists it.
    async fn publish_suite(&self, signer: &Signer, suite: &str, packages: &[(String, String)]) {
        let (os, dist) = suite.split_once('/').unwrap();
        let index = packages_index(packages);
        let sha = sha256_hex(index.as_bytes());
        let directory = format!("{os}/dists/{dist}");
        self.put(true, &format!("{directory}/main/binary-amd64/Packages"), &index)
            .await;
        self.put(
            true,
            &format!("{directory}/main/binary-amd64/by-hash/SHA256/{sha}"),
            &index,
        )
        .await;
        let release = format!(
            "Origin: HHVM\nSuite: {dist}\nAcquire-By-Hash: yes\nSHA256:\n {sha} {} main/binary-amd64/Packages\n",
            index.len()
        );
        self.put(true, &format!("{directory}/InRelease"), &signer.clearsign(&release))
            .await;
        self.put(true, "conf/hhvm.gpg.key", &signer.public_key).await;
    }

    /// A distro's success marker (`marker`) in the scratch bucket.
    async fn put_marker(&self, version: &str, distro: &str, files: &[&str]) {
        let key = format!("markers/{version}/binary-package/{distro}.json");
        self.put(false, &key, &marker(version, distro, files)).await;
    }

    /// The repository update's marker: `distro` published from `instance` to `suites`.
    async fn update_marker(&self, version: &str, published: Value) {
        let marker = json!({"job": "update-repositories", "version": version, "published": published});
        self.put(
            false,
            &format!("markers/{version}/update-repositories.json"),
            &marker.to_string(),
        )
        .await;
    }

    /// The pool files of `debs` (for `os`) and what a Packages index lists for them.
    async fn pool(&self, os: &str, debs: &[&str]) -> Vec<(String, String)> {
        let mut listed = Vec::new();
        for deb in debs {
            self.put(true, &format!("{os}/pool/main/h/hhvm/{deb}"), "deb").await;
            listed.push((format!("pool/main/h/hhvm/{deb}"), file_sha(deb)));
        }
        listed
    }
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
        .put_marker("4.168.2", "debian-12-bookworm", &bookworm_files)
        .await;
    let signer = Signer::new();
    let listed = fixture.pool("debian", &bookworm_debs).await;
    fixture.publish_suite(&signer, "debian/bookworm", &listed).await;
    fixture
        .update_marker(
            "4.168.2",
            json!({"debian-12-bookworm": {"instance": BUILDER, "suites": ["debian/bookworm"]}}),
        )
        .await;
    // Built: marker present, the package not yet in the pool.
    fixture
        .put_marker("4.168.2", "ubuntu-22.04-jammy", &["hhvm_4.168.2-2~jammy_amd64.deb"])
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
    let output = fixture
        .status(json!({"version": "2026.11.20", "distros": ["debian-12-bookworm"]}))
        .await;
    assert_eq!(output["artifacts"]["source"]["status"], "published");
    assert_eq!(output["packagingBranch"], "master");

    // Built release: its marker exists, the public copy does not yet.
    fixture.put(false, "markers/4.168.2/source-tarball.json", "{}").await;
    let output = fixture
        .status(json!({"version": "4.168.2", "distros": ["debian-12-bookworm"]}))
        .await;
    assert_eq!(output["artifacts"]["source"]["status"], "built_not_published");
    assert_eq!(
        output["artifacts"]["source"]["location"],
        json!({"bucket": fixture.config.buckets.downloads.as_str(), "path": "source/hhvm-4.168.2.tar.gz"})
    );

    // Failed: only a log.
    fixture
        .put(false, "logs/4.167.0/source-tarball/i-0009.log", "boom")
        .await;
    let output = fixture
        .status(json!({"version": "4.167.0", "distros": ["debian-12-bookworm"]}))
        .await;
    assert_eq!(output["artifacts"]["source"]["status"], "failed");
    assert_eq!(
        output["artifacts"]["source"]["log"]["path"],
        "logs/4.167.0/source-tarball/i-0009.log"
    );

    // Not built: nothing. Without a version, today's nightly is reported.
    let output = fixture.status(json!({"distros": ["debian-12-bookworm"]})).await;
    assert_eq!(output["version"], "2026.11.21");
    assert_eq!(output["artifacts"]["source"]["status"], "not_built");
    assert_eq!(output["not_built"], json!(["source", "debian-12-bookworm"]));
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
        .put_marker("4.168.2", "debian-12-bookworm", &["hhvm_4.168.2-2~bookworm_amd64.deb"])
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
async fn published_means_the_signed_index_lists_this_build() {
    let fixture = Fixture::new(None).await;
    let signer = Signer::new();
    let debs = ["hhvm_4.168.2-2~bookworm_amd64.deb"];
    fixture.put_marker("4.168.2", "debian-12-bookworm", &debs).await;
    let listed = fixture.pool("debian", &debs).await;
    let request = json!({"version": "4.168.2", "distros": ["debian-12-bookworm"]});
    let bookworm = async || fixture.status(request.clone()).await["artifacts"]["debian-12-bookworm"].clone();

    // In the pool, but the update died before its marker: the update and its log are named.
    let update_log = "logs/4.168.2/update-repositories/i-0000000000000000a.log";
    fixture.put(false, update_log, "died").await;
    let status = bookworm().await;
    assert_eq!(status["status"], "built_not_published", "{status}");
    assert_eq!(
        status["problem"],
        "the repository update wrote no success marker for this version"
    );
    assert_eq!(status["log"]["path"], update_log);

    fixture
        .update_marker(
            "4.168.2",
            json!({"debian-12-bookworm": {"instance": BUILDER, "suites": ["debian/bookworm"]}}),
        )
        .await;
    assert_eq!(
        bookworm().await["problem"],
        "the public key s3://".to_string()
            + fixture.config.buckets.downloads.as_str()
            + "/conf/hhvm.gpg.key cannot be read (it is missing): clients cannot verify anything"
    );
    fixture.put(true, "conf/hhvm.gpg.key", &signer.public_key).await;
    assert_eq!(
        bookworm().await["problem"],
        "debian/dists/bookworm/InRelease is not published"
    );

    // Signed by a key clients were not given.
    let stranger = Signer::new();
    fixture.publish_suite(&stranger, "debian/bookworm", &listed).await;
    fixture.put(true, "conf/hhvm.gpg.key", &signer.public_key).await;
    let problem = bookworm().await["problem"].as_str().unwrap_or_default().to_string();
    assert!(
        problem.starts_with("debian/dists/bookworm: InRelease does not verify with the public key"),
        "{problem}"
    );

    // Listed, but with another build's checksum.
    let other = "ab".repeat(32);
    fixture
        .publish_suite(&signer, "debian/bookworm", &[(listed[0].0.clone(), other.clone())])
        .await;
    assert_eq!(
        bookworm().await["problem"],
        format!(
            "debian/bookworm lists {} with sha256 {other}, not this build's {}",
            listed[0].0, listed[0].1
        )
    );

    // Listed as built: published.
    fixture.publish_suite(&signer, "debian/bookworm", &listed).await;
    let status = bookworm().await;
    assert_eq!(status["status"], "published", "{status}");
    assert_eq!(status.get("problem"), None);

    // The by-hash index a client fetches is not the one the InRelease states.
    let index_sha = sha256_hex(packages_index(&listed).as_bytes());
    let by_hash = format!("debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{index_sha}");
    fixture.put(true, &by_hash, "torn").await;
    let problem = bookworm().await["problem"].as_str().unwrap_or_default().to_string();
    assert!(
        problem.starts_with(&format!(
            "debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{index_sha}: "
        )) && problem.contains("the Release states"),
        "{problem}"
    );
    fixture.publish_suite(&signer, "debian/bookworm", &listed).await;

    // The update published another build of the distro than the one whose marker is there.
    fixture
        .update_marker(
            "4.168.2",
            json!({"debian-12-bookworm": {"instance": "i-0fedcba9876543210", "suites": ["debian/bookworm"]}}),
        )
        .await;
    assert_eq!(
        bookworm().await["problem"],
        format!(
            "the repositories have the build by i-0fedcba9876543210, not this build by {BUILDER} (execution build-1)"
        )
    );
    let mut required = request.clone();
    required["require"] = json!("published");
    let error = handle_on(&fixture.s3, &fixture.config, required, today())
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "PublishFailed");
    assert!(
        error.to_string().contains(&format!(
            "debian-12-bookworm (built not published), log s3://{}/{update_log}",
            fixture.scratch()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn with_builds_only_the_marker_of_this_builds_worker_counts() {
    let fixture = Fixture::new(None).await;
    fixture.put(false, "markers/4.168.2/source-tarball.json", "{}").await;
    fixture
        .put_marker("4.168.2", "debian-12-bookworm", &["hhvm_4.168.2-2~bookworm_amd64.deb"])
        .await;
    let rebuild = "i-0fedcba9876543210";
    let input = json!({"version": "4.168.2", "distros": ["debian-12-bookworm"], "require": "built",
                       "builds": [{"distro": "debian-12-bookworm", "instance": rebuild}]});
    let error = handle_on(&fixture.s3, &fixture.config, input, today())
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "BuildFailed");
    assert_eq!(
        error.to_string(),
        format!(
            "4.168.2 did not build: debian-12-bookworm (failed), log s3://{}/logs/4.168.2/binary-package/\
             debian-12-bookworm/{rebuild}.log, its worker {rebuild} wrote no success marker; the one there is \
             from the earlier build by {BUILDER} (execution build-1)",
            fixture.scratch()
        )
    );

    let input = json!({"version": "4.168.2", "distros": ["debian-12-bookworm"], "require": "built",
                       "builds": [{"distro": "debian-12-bookworm", "instance": BUILDER}]});
    let report = fixture.status(input).await;
    assert_eq!(report["built_not_published"], json!(["source", "debian-12-bookworm"]));

    let input =
        json!({"version": "4.168.2", "distros": ["debian-12-bookworm"], "builds": [{"distro": "debian-12-bookworm"}]});
    let error = handle_on(&fixture.s3, &fixture.config, input, today())
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "InvalidInput");
    assert!(error.to_string().contains("`builds[0]`"), "{error}");
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
            json!({"version": "4.1.0", "packagingBranch": "main", "distros": ["debian-12-bookworm"]}),
            "InvalidInput",
            "`packagingBranch`",
        ),
        (
            json!({"version": "4.1.0", "require": "everything", "distros": ["debian-12-bookworm"]}),
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
