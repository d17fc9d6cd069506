//! What the local stack adds to the deployed template because it stands in for things outside
//! AWS: the packaging repository's `CURRENT_TARGETS` and `DEBIAN_REPOSITORIES` over HTTP, the git repositories (as
//! `file://` URLs) and the source's `info/refs`, a throwaway signing key, the secrets' values
//! (the template declares the secrets by name only), and the bucket of packages not built here.

use std::path::{Path, PathBuf};

use crate::fixtures::{self, RELEASE_BRANCHES, Repositories, SigningKey};
use crate::{Context, StackError};

/// The bucket the local stack serves the packaging repository's files and the source's refs
/// from, over plain HTTP.
pub const PACKAGING_BUCKET: &str = "hhvm-local-packaging";
/// Packages the pipeline does not build (the template only names this bucket).
pub const NODIST_BUCKET: &str = "hhvm-nodist";

/// What `prepare` made.
#[derive(Debug, Clone)]
pub struct LocalResources {
    pub repositories: Repositories,
    pub signing_key: SigningKey,
    /// `CURRENT_TARGETS_URL` with `{branch}`.
    pub current_targets_url: String,
    /// `NIGHTLY_SOURCE_REFS_URL`: the staging repository's `info/refs`.
    pub source_refs_url: String,
}

/// Creates the buckets and files above in moto at `endpoint`, and the git repositories and
/// signing key under `run_dir`.
pub async fn prepare(
    s3: &aws_sdk_s3::Client,
    endpoint: &str,
    root: &Path,
    run_dir: &Path,
) -> Result<LocalResources, StackError> {
    for bucket in [PACKAGING_BUCKET, NODIST_BUCKET] {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .context(format!("S3 CreateBucket {bucket}"))?;
    }
    // The Lambdas read CURRENT_TARGETS and the refs over plain HTTP, as from GitHub.
    allow_public_reads(s3, PACKAGING_BUCKET).await?;
    let fixtures_dir = root.join("tests/fixtures");
    let targets_path = fixtures_dir.join("packaging/CURRENT_TARGETS");
    let targets = std::fs::read(&targets_path).context(format!("read {}", targets_path.display()))?;
    for branch in std::iter::once("master").chain(RELEASE_BRANCHES) {
        put(s3, &format!("{branch}/CURRENT_TARGETS"), targets.clone()).await?;
    }

    let repositories = fixtures::make_repositories(&run_dir.join("git"), &fixtures_dir)?;
    // Each branch's DEBIAN_REPOSITORIES beside its CURRENT_TARGETS, as GitHub serves the files of
    // a branch: `hhvmctl plan` reads which suites a publish updates from it.
    for branch in std::iter::once("master").chain(RELEASE_BRANCHES) {
        let repositories_file = fixtures::run(
            Some(&repositories.packaging),
            &[],
            "git",
            &["show", &format!("{branch}:DEBIAN_REPOSITORIES")],
        )?;
        put(
            s3,
            &format!("{branch}/DEBIAN_REPOSITORIES"),
            repositories_file.into_bytes(),
        )
        .await?;
    }
    // git's dumb HTTP protocol file: what `hhvm-start-nightly` reads the branch head from.
    fixtures::run(Some(&repositories.staging), &[], "git", &["update-server-info"])?;
    let refs_path: PathBuf = repositories.staging.join("info/refs");
    let refs = std::fs::read(&refs_path).context(format!("read {}", refs_path.display()))?;
    put(s3, "hhvm-staging.git/info/refs", refs).await?;

    let signing_key = fixtures::make_signing_key(run_dir)?;
    Ok(LocalResources {
        repositories,
        signing_key,
        current_targets_url: format!("{endpoint}/{PACKAGING_BUCKET}/{{branch}}/CURRENT_TARGETS"),
        source_refs_url: format!("{endpoint}/{PACKAGING_BUCKET}/hhvm-staging.git/info/refs"),
    })
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: Vec<u8>) -> Result<(), StackError> {
    s3.put_object()
        .bucket(PACKAGING_BUCKET)
        .key(key)
        .content_type("text/plain")
        .body(body.into())
        .send()
        .await
        .context(format!("S3 PutObject {PACKAGING_BUCKET}/{key}"))?;
    Ok(())
}

/// Adds anonymous `s3:GetObject` to `bucket`'s policy (keeping its statements), lifting the
/// public access block first. For the downloads bucket this stands in for the CDN: in AWS
/// CloudFront serves it through Origin Access Control; moto has no CDN, so apt reads the bucket.
pub async fn allow_public_reads(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), StackError> {
    s3.delete_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .context(format!("S3 DeletePublicAccessBlock {bucket}"))?;
    let mut policy = match s3.get_bucket_policy().bucket(bucket).send().await {
        Ok(found) => serde_json::from_str(found.policy().unwrap_or("{}"))
            .context(format!("the policy of {bucket} is not JSON"))?,
        Err(_) => serde_json::json!({"Version": "2012-10-17", "Statement": []}),
    };
    let statement = serde_json::json!({
        "Sid": "LocalStackPublicRead", "Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*"),
    });
    match policy["Statement"].as_array_mut() {
        Some(statements) => statements.push(statement),
        None => policy["Statement"] = serde_json::json!([statement]),
    }
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(policy.to_string())
        .send()
        .await
        .context(format!("S3 PutBucketPolicy {bucket}"))?;
    Ok(())
}

/// A `file://` URL of a local repository.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// What an operator does once per signing key (docs/deploy.md): the public key clients use, at
/// `conf/hhvm.gpg.key` of the download bucket, where publishes are verified against it.
pub async fn publish_public_key(s3: &aws_sdk_s3::Client, bucket: &str, public_key: &Path) -> Result<(), StackError> {
    let key = pipeline_core::layout::REPOSITORY_KEYRING_KEY;
    let body = std::fs::read(public_key).context(format!("read {}", public_key.display()))?;
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/pgp-keys")
        .body(body.into())
        .send()
        .await
        .context(format!("S3 PutObject {bucket}/{key}"))?;
    Ok(())
}
