//! `userdata/update-repos.sh` against moto, with the real tools a worker runs: the AWS CLI, gpg,
//! dpkg-deb, python3 and `apt_repository.py`. Only `git` (the packaging checkout) and `shutdown`
//! are stand-ins. moto records every request it is sent, in order; with the download bucket
//! versioned, the checker replays the publish's writes one by one and looks at the repository
//! as apt would after each of them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use pipeline_testing::aws_cli::AwsCliServer;
use pipeline_testing::{MotoServer, unique_name};
use pipeline_tests::{SigningKey, make_signing_key};
use serde_json::Value;
use sha2::{Digest, Sha256};

const INSTANCE: &str = "i-0123456789abcdef0";
/// The build worker whose staged packages the tests publish.
const BUILDER: &str = "i-0fedcba9876543210";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// moto with its request recorder writing to a file of this test process.
struct RecordingMoto {
    server: MotoServer,
    recording: PathBuf,
}

fn moto() -> &'static RecordingMoto {
    static MOTO: OnceLock<RecordingMoto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("publish-repositories-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let recording = dir.join("recording.jsonl");
        let executable = std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| repository().join(".venv/bin/moto_server"));
        let mut command = Command::new(executable);
        command
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .env("MOTO_ENABLE_RECORDING", "true");
        let server = MotoServer::start("moto_server (recording)", command, &dir.join("moto.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        RecordingMoto { server, recording }
    })
}

/// A publisher's world: its buckets in moto, the signing key as a secret, the packaging
/// checkout stand-in, and a directory per run of the script.
struct World {
    dir: PathBuf,
    s3: aws_sdk_s3::Client,
    scratch: String,
    downloads: String,
    key: SigningKey,
    secret_id: String,
}

impl World {
    async fn new(name: &str) -> World {
        let moto = moto();
        let config = moto.server.sdk_config().await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let scratch = pipeline_testing::create_bucket(&s3, "scratch").await;
        let downloads = pipeline_testing::create_bucket(&s3, "downloads").await;
        s3.put_bucket_versioning()
            .bucket(&downloads)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        // gpg-agent's socket paths must stay short: a directory of its own under /tmp.
        let dir = PathBuf::from(format!("/tmp/pr-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = make_signing_key(&dir.join("key")).unwrap_or_else(|e| panic!("{e}"));
        let secret_id = unique_name("hhvm/package-signing-key");
        let secrets = aws_sdk_secretsmanager_put(&moto.server, &secret_id, &key.secret_key);
        assert!(secrets.status.success(), "{}", String::from_utf8_lossy(&secrets.stderr));
        let stubs = dir.join("stubs");
        std::fs::create_dir_all(&stubs).unwrap();
        for tool in ["git", "shutdown"] {
            std::os::unix::fs::symlink(repository().join("tests/fixtures/stubs/record"), stubs.join(tool)).unwrap();
        }
        World {
            dir,
            s3,
            scratch,
            downloads,
            key,
            secret_id,
        }
    }

    /// Builds VERSION's packages for bookworm with dpkg-deb and stages them as a successful
    /// build does: the files and SHA256SUMS under the attempt's own prefix, then the success
    /// marker naming that prefix and each file's SHA-256.
    async fn stage_build(&self, version: &str) {
        let distro = "debian-12-bookworm";
        let staging = format!("{version}/{distro}/{BUILDER}/");
        let out = self.dir.join(format!("build-{version}"));
        std::fs::create_dir_all(&out).unwrap();
        let package_version = format!("{version}-1~bookworm");
        let mut sums = String::new();
        let mut files = Vec::new();
        for package in ["hhvm", "hhvm-dev"] {
            let root = out.join(format!("root-{package}"));
            std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
            std::fs::create_dir_all(root.join("usr/share/doc").join(package)).unwrap();
            std::fs::write(
                root.join("usr/share/doc").join(package).join("VERSION"),
                &package_version,
            )
            .unwrap();
            std::fs::write(
                root.join("DEBIAN/control"),
                format!(
                    "Package: {package}\nSource: hhvm\nVersion: {package_version}\nArchitecture: amd64\n\
                     Maintainer: HHVM <hhvm@example.com>\nDescription: {package} for the publish tests\n"
                ),
            )
            .unwrap();
            let deb_name = format!("{package}_{package_version}_amd64.deb");
            let deb = out.join(&deb_name);
            let built = Command::new("dpkg-deb")
                .args(["--root-owner-group", "--build"])
                .arg(&root)
                .arg(&deb)
                .output()
                .unwrap();
            assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
            let bytes = std::fs::read(&deb).unwrap();
            sums.push_str(&format!("{}  {deb_name}\n", hex_sha256(&bytes)));
            files.push(serde_json::json!({"name": deb_name, "bytes": bytes.len(), "sha256": hex_sha256(&bytes)}));
            self.put(&self.scratch, &format!("{staging}{deb_name}"), bytes).await;
        }
        self.put(&self.scratch, &format!("{staging}SHA256SUMS"), sums.into_bytes())
            .await;
        let marker = serde_json::json!({
            "job": "binary-package", "version": version, "distro": distro, "instance": BUILDER,
            "executionName": "build-1", "artifacts": format!("s3://{}/{staging}", self.scratch), "files": files,
        });
        self.put(
            &self.scratch,
            &format!("markers/{version}/binary-package/{distro}.json"),
            marker.to_string().into_bytes(),
        )
        .await;
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    }

    async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let object = self.s3.get_object().bucket(bucket).key(key).send().await.ok()?;
        Some(object.body.collect().await.unwrap().into_bytes().to_vec())
    }

    /// The success marker the repository update of VERSION wrote.
    async fn update_marker(&self, version: &str) -> Value {
        let key = format!("markers/{version}/update-repositories.json");
        let bytes = self
            .get(&self.scratch, &key)
            .await
            .unwrap_or_else(|| panic!("no {key}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{key} is not JSON: {e}"))
    }

    /// A command that runs update-repos.sh for VERSION as a worker would.
    fn publisher(&self, version: &str, run: &str, extra: &[(&str, &str)]) -> Command {
        let run_dir = self.dir.join(run);
        std::fs::create_dir_all(run_dir.join("gnupg")).unwrap();
        std::fs::set_permissions(
            run_dir.join("gnupg"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let path = format!(
            "{}:{}:{}",
            self.dir.join("stubs").display(),
            repository().join(".venv/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command.arg(repository().join("userdata/update-repos.sh")).env_clear();
        // The script's `aws` commands are forks of a process that imported the CLI.
        AwsCliServer::shared().configure(&mut command, &path);
        command
            .env("HOME", &run_dir)
            .env("LANG", "C.UTF-8")
            .env("GNUPGHOME", run_dir.join("gnupg"))
            .env("AWS_ENDPOINT_URL", moto().server.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("VERSION", version)
            .env("PACKAGING_BRANCH", "HHVM-4.168")
            .env("SCRATCH_BUCKET", &self.scratch)
            .env("DOWNLOADS_BUCKET", &self.downloads)
            .env("SIGNING_KEY_SECRET_ID", &self.secret_id)
            .env("SIGNING_KEY_ID", &self.key.fingerprint)
            .env("WORK_DIR", run_dir.join("work"))
            .env("PACKAGING_DIR", run_dir.join("packaging"))
            .env("WORKER_LOG", run_dir.join("worker.log"))
            .env("INSTANCE_ID", format!("{INSTANCE}-{run}"))
            .env("SHUTDOWN_WHEN_DONE", "false")
            .env("INSTALL_PACKAGES", "false")
            .env("CALLS_LOG", run_dir.join("calls.log"))
            .env("FAKE_PACKAGING", repository().join("tests/fixtures/packaging"))
            .stdin(Stdio::null());
        // What cloud-init does on EC2: the script's output is the log it uploads.
        let log = std::fs::File::create(run_dir.join("worker.log")).unwrap();
        command.stdout(log.try_clone().unwrap()).stderr(log);
        for (key, value) in extra {
            command.env(key, value);
        }
        command
    }

    fn publish(&self, version: &str, run: &str, extra: &[(&str, &str)]) -> Output {
        self.publisher(version, run, extra).output().unwrap()
    }

    /// The suite's index as apt reads it: InRelease verified against the key, then the Packages
    /// file it names, by hash. Returns the package stanzas' `Package Version` pairs.
    async fn packages_of(&self, suite: &str) -> Vec<String> {
        let in_release = self
            .get(&self.downloads, &format!("debian/dists/{suite}/InRelease"))
            .await
            .unwrap_or_else(|| panic!("{suite} has no InRelease"));
        let release = self.verified_release(&in_release);
        let (sha, _) = release.sha256["main/binary-amd64/Packages"].clone();
        let packages = self
            .get(
                &self.downloads,
                &format!("debian/dists/{suite}/main/binary-amd64/by-hash/SHA256/{sha}"),
            )
            .await
            .expect("the by-hash Packages of the InRelease");
        assert_eq!(hex_sha256(&packages), sha);
        let mut listed: Vec<String> = String::from_utf8(packages)
            .unwrap()
            .split("\n\n")
            .filter_map(|stanza| {
                let field = |name: &str| {
                    stanza
                        .lines()
                        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                        .map(str::to_string)
                };
                Some(format!("{} {}", field("Package")?, field("Version")?))
            })
            .collect();
        listed.sort();
        listed
    }

    /// Verifies a clearsigned InRelease with gpgv against the world's public key only.
    fn verified_release(&self, in_release: &[u8]) -> Release {
        let file = self.dir.join(format!("check-{}.InRelease", unique_name("r")));
        std::fs::write(&file, in_release).unwrap();
        let verified = Command::new("gpgv")
            .arg("--keyring")
            .arg(&self.key.public_keyring)
            .arg(&file)
            .output()
            .unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(
            verified.status.success(),
            "InRelease does not verify: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
        Release::parse(&String::from_utf8_lossy(in_release))
    }

    /// The keys of the download bucket under `prefix` (one page: these repositories are small).
    async fn published_keys(&self, prefix: &str) -> Vec<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.downloads)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        assert!(!listed.is_truncated().unwrap_or(false), "more keys than one page");
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(String::from)
            .collect()
    }

    async fn head(&self, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.s3
            .head_object()
            .bucket(&self.downloads)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
    }

    fn log(&self, run: &str) -> String {
        std::fs::read_to_string(self.dir.join(run).join("worker.log")).unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--kill")
            .arg("gpg-agent")
            .env("GNUPGHOME", self.dir.join("key/gnupg"))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn aws_sdk_secretsmanager_put(moto: &MotoServer, id: &str, value: &str) -> Output {
    AwsCliServer::shared()
        .aws()
        .args([
            "secretsmanager",
            "create-secret",
            "--name",
            id,
            "--secret-string",
            value,
        ])
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap()
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What a client reads from a Release file: whether it fetches by hash, and each index's
/// SHA-256 and size.
struct Release {
    by_hash: bool,
    sha256: BTreeMap<String, (String, u64)>,
}

impl Release {
    fn parse(text: &str) -> Release {
        let body = match text.split_once("\n\n") {
            Some((head, rest)) if head.starts_with("-----BEGIN PGP SIGNED MESSAGE-----") => {
                rest.split("\n-----BEGIN PGP SIGNATURE-----").next().unwrap_or("")
            }
            _ => text,
        };
        let mut sha256 = BTreeMap::new();
        let mut in_sha256 = false;
        let mut by_hash = false;
        for line in body.lines() {
            if let Some(entry) = line.strip_prefix(' ') {
                if in_sha256 {
                    let fields: Vec<&str> = entry.split_whitespace().collect();
                    if let [hash, size, path] = fields.as_slice() {
                        sha256.insert(path.to_string(), (hash.to_string(), size.parse().unwrap()));
                    }
                }
                continue;
            }
            in_sha256 = line == "SHA256:";
            by_hash |= line == "Acquire-By-Hash: yes";
        }
        Release { by_hash, sha256 }
    }
}

// ------------------------------------------------------------------------------ the checker

/// One write moto was asked for, in the order it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Write {
    Put(String),
    Delete(String),
}

/// The writes to `bucket` in moto's recording (objects only; failed conditional writes are
/// in the recording too and are told apart by the bucket's versions).
fn recorded_writes(bucket: &str) -> Vec<Write> {
    writes_of(&std::fs::read_to_string(&moto().recording).unwrap_or_default(), bucket)
}

/// The object writes to `bucket` in the lines of a moto recording.
fn writes_of(text: &str, bucket: &str) -> Vec<Write> {
    let prefix = format!("/{bucket}/");
    text.lines()
        .filter_map(|line| {
            let entry: Value = serde_json::from_str(line).ok()?;
            let url = entry["url"].as_str()?;
            // Recorded URLs are absolute: the path starts at the first '/' after the host.
            let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
            let path = &after_scheme[after_scheme.find('/')?..];
            let (path, query) = path.split_once('?').unwrap_or((path, ""));
            // Requests on the bucket itself (creating it, its versioning) write no object.
            let key = path.strip_prefix(&prefix).filter(|key| !key.is_empty())?;
            let key = percent_decode(key);
            match entry["method"].as_str()? {
                "PUT" if !query.contains("uploadId") && !query.contains("tagging") => Some(Write::Put(key)),
                "POST" if query.contains("uploadId") => Some(Write::Put(key)),
                "DELETE" if !query.contains("uploadId") => Some(Write::Delete(key)),
                _ => None,
            }
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Every version of every object of `bucket`, oldest first per key.
async fn versions(world: &World, bucket: &str) -> BTreeMap<String, Vec<Option<Vec<u8>>>> {
    let listed = world.s3.list_object_versions().bucket(bucket).send().await.unwrap();
    assert!(!listed.is_truncated().unwrap_or(false), "more versions than one page");
    let mut by_key: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for version in listed.versions() {
        let modified = version.last_modified().map(|t| t.to_string()).unwrap_or_default();
        by_key
            .entry(version.key().unwrap().to_string())
            .or_default()
            .push((modified, version.version_id().map(str::to_string)));
    }
    for marker in listed.delete_markers() {
        let modified = marker.last_modified().map(|t| t.to_string()).unwrap_or_default();
        by_key
            .entry(marker.key().unwrap().to_string())
            .or_default()
            .push((modified, None));
    }
    let mut contents = BTreeMap::new();
    for (key, mut list) in by_key {
        list.sort();
        let mut bodies = Vec::new();
        for (_, version_id) in list {
            bodies.push(match version_id {
                Some(id) => {
                    let object = world
                        .s3
                        .get_object()
                        .bucket(bucket)
                        .key(&key)
                        .version_id(id)
                        .send()
                        .await
                        .unwrap();
                    Some(object.body.collect().await.unwrap().into_bytes().to_vec())
                }
                None => None,
            });
        }
        contents.insert(key, bodies);
    }
    contents
}

/// Replays the writes to the download bucket one at a time and, after each, checks every suite
/// as apt with by-hash reads it: its InRelease verifies, every index it lists is there by hash
/// with that hash and size, and every package those indices list is in the pool with its
/// SHA-256. Returns the number of states checked and every inconsistency found.
async fn replay_and_check(world: &World) -> (usize, Vec<String>) {
    let writes = recorded_writes(&world.downloads);
    let mut versions = versions(world, &world.downloads).await;
    let puts: usize = writes.iter().filter(|w| matches!(w, Write::Put(_))).count();
    let stored: usize = versions
        .values()
        .map(|v| v.iter().filter(|b| b.is_some()).count())
        .sum();
    assert_eq!(
        puts, stored,
        "every recorded write is one version of the bucket: {writes:#?}"
    );
    let mut state: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (step, write) in writes.iter().enumerate() {
        match write {
            Write::Put(key) => {
                let body = versions.get_mut(key).and_then(|v| v.drain(..1).next()).flatten();
                state.insert(key.clone(), body.expect("the version of a recorded write"));
            }
            Write::Delete(key) => {
                if let Some(list) = versions.get_mut(key)
                    && list.first().is_some_and(Option::is_none)
                {
                    list.remove(0);
                }
                state.remove(key);
            }
        }
        problems.extend(
            inconsistencies(world, &state)
                .into_iter()
                .map(|problem| format!("after write {step} ({write:?}): {problem}")),
        );
    }
    (writes.len(), problems)
}

/// What a client with by-hash would trip over in the bucket state `state`: an InRelease that
/// does not verify (a panic), an index it lists that is not there by hash with that hash and
/// size, a package an index lists that is not in the pool with its SHA-256.
fn inconsistencies(world: &World, state: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, in_release) in state.iter().filter(|(k, _)| k.ends_with("/InRelease")) {
        let suite_dir = key.trim_end_matches("InRelease");
        let release = world.verified_release(in_release);
        if !release.by_hash {
            problems.push(format!("{key} has no Acquire-By-Hash"));
        }
        for (path, (sha, size)) in &release.sha256 {
            let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
            let by_hash = format!("{suite_dir}{dir}/by-hash/SHA256/{sha}");
            match state.get(&by_hash) {
                Some(body) if hex_sha256(body) == *sha && body.len() as u64 == *size => {
                    if path.ends_with("/Packages") {
                        problems.extend(pool_inconsistencies(state, key, body));
                    }
                }
                Some(_) => problems.push(format!("{by_hash} does not have the hash {key} states")),
                None => problems.push(format!("{key} lists {path}, but {by_hash} is missing")),
            }
        }
    }
    problems
}

fn pool_inconsistencies(state: &BTreeMap<String, Vec<u8>>, in_release: &str, packages: &[u8]) -> Vec<String> {
    let repository = in_release.split("/dists/").next().unwrap();
    let mut problems = Vec::new();
    for stanza in String::from_utf8_lossy(packages).split("\n\n") {
        let field = |name: &str| stanza.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")));
        let (Some(filename), Some(sha)) = (field("Filename"), field("SHA256")) else {
            continue;
        };
        let key = format!("{repository}/{filename}");
        if state.get(&key).map(|body| hex_sha256(body)) != Some(sha.to_string()) {
            problems.push(format!("{in_release} indexes {key}, which is missing or differs"));
        }
    }
    problems
}

fn assert_succeeded(output: &Output, world: &World, run: &str) {
    assert!(
        output.status.success(),
        "update-repos.sh failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        world.log(run)
    );
}

// ------------------------------------------------------------------------------ the tests

#[tokio::test(flavor = "multi_thread")]
async fn every_write_of_a_first_publish_and_an_update_leaves_a_consistent_repository() {
    let world = World::new("consistency").await;
    world.stage_build("4.168.1").await;
    world.stage_build("4.168.2").await;

    let first = world.publish("4.168.1", "first", &[]);
    assert_succeeded(&first, &world, "first");
    assert_eq!(
        world.packages_of("bookworm").await,
        ["hhvm 4.168.1-1~bookworm", "hhvm-dev 4.168.1-1~bookworm"]
    );
    let update = world.publish("4.168.2", "update", &[]);
    assert_succeeded(&update, &world, "update");
    // The pinned suite of the branch too (DEBIAN_REPOSITORIES: DISTRO and DISTRO-4.168).
    for suite in ["bookworm", "bookworm-4.168"] {
        assert_eq!(
            world.packages_of(suite).await,
            [
                "hhvm 4.168.1-1~bookworm",
                "hhvm 4.168.2-1~bookworm",
                "hhvm-dev 4.168.1-1~bookworm",
                "hhvm-dev 4.168.2-1~bookworm"
            ],
            "{suite}"
        );
    }

    let (states, problems) = replay_and_check(&world).await;
    assert!(states > 20, "only {states} writes were recorded");
    assert!(
        problems.is_empty(),
        "{} inconsistent states:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // No repository database in the public bucket; the lease is released.
    let keys = world.published_keys("").await;
    assert!(
        keys.iter().all(|k| !k.contains("/conf/") && !k.contains("/db/")),
        "{keys:?}"
    );
    assert!(world.get(&world.scratch, "locks/apt-repositories.json").await.is_none());
    let marker = world.update_marker("4.168.2").await;
    assert_eq!(marker["dists"], "debian/bookworm debian/bookworm-4.168");
}

#[tokio::test(flavor = "multi_thread")]
async fn release_files_are_short_lived_for_caches_and_everything_else_immutable() {
    let world = World::new("caching").await;
    world.stage_build("4.168.2").await;
    assert_succeeded(&world.publish("4.168.2", "run", &[]), &world, "run");
    let keys = world.published_keys("").await;
    for key in &keys {
        let head = world.head(key).await;
        let cache = head.cache_control().unwrap_or_default();
        let immutable = key.contains("/by-hash/") || key.contains("/pool/");
        if immutable {
            assert_eq!(cache, "public, max-age=31536000, immutable", "{key}");
        } else {
            assert_eq!(cache, "public, max-age=60", "{key}");
        }
    }
}

/// The by-hash keys of the suite's amd64 indices, with their `retired` metadata.
async fn by_hash_files(world: &World, suite: &str) -> BTreeMap<String, Option<String>> {
    let prefix = format!("debian/dists/{suite}/main/binary-amd64/by-hash/SHA256/");
    let keys = world.published_keys(&prefix).await;
    let mut files = BTreeMap::new();
    for key in &keys {
        let head = world.head(key).await;
        let retired = head.metadata().and_then(|m| m.get("retired")).cloned();
        files.insert(key.to_string(), retired);
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_index_generation_is_kept_for_the_retention_time_then_deleted() {
    let world = World::new("retention").await;
    for version in ["4.168.1", "4.168.2", "4.168.3"] {
        world.stage_build(version).await;
    }
    assert_succeeded(&world.publish("4.168.1", "first", &[]), &world, "first");
    let first = by_hash_files(&world, "bookworm").await;
    assert_eq!(first.len(), 2, "Packages and Packages.gz: {first:?}");
    assert!(first.values().all(Option::is_none));

    assert_succeeded(&world.publish("4.168.2", "second", &[]), &world, "second");
    let second = by_hash_files(&world, "bookworm").await;
    assert_eq!(second.len(), 4, "{second:?}");
    for key in first.keys() {
        assert!(
            second[key].is_some(),
            "{key}: the replaced generation is kept, marked retired"
        );
    }

    let none_kept = [("BY_HASH_RETENTION_DAYS", "0")];
    assert_succeeded(&world.publish("4.168.3", "third", &none_kept), &world, "third");
    let third = by_hash_files(&world, "bookworm").await;
    assert_eq!(third.len(), 2, "only the current generation is left: {third:?}");
    assert!(third.keys().all(|key| !second.contains_key(key)), "{third:?}");
    assert!(
        world.log("third").contains("listed by no Release since"),
        "{}",
        world.log("third")
    );
    assert_eq!(world.packages_of("bookworm").await.len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn re_running_a_publish_succeeds_and_changes_no_package() {
    let world = World::new("rerun").await;
    world.stage_build("4.168.2").await;
    assert_succeeded(&world.publish("4.168.2", "first", &[]), &world, "first");
    let before = world.packages_of("bookworm").await;
    let again = world.publish("4.168.2", "again", &[]);
    assert_succeeded(&again, &world, "again");
    assert_eq!(world.packages_of("bookworm").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_the_files_the_marker_names_are_published_checked_by_sha256() {
    let world = World::new("exact").await;
    world.stage_build("4.168.2").await;
    // An earlier attempt's package, staged beside this one's: not named by the marker.
    let stray = "4.168.2/debian-12-bookworm/i-0000000000000000a/hhvm-stray_4.168.2-1~bookworm_amd64.deb";
    world.put(&world.scratch, stray, b"an earlier attempt".to_vec()).await;
    assert_succeeded(&world.publish("4.168.2", "run", &[]), &world, "run");
    assert_eq!(
        world.packages_of("bookworm").await,
        ["hhvm 4.168.2-1~bookworm", "hhvm-dev 4.168.2-1~bookworm"]
    );
    assert!(world.log("run").contains(&format!(
        "publishing the build of debian-12-bookworm by {BUILDER}: 2 packages"
    )));
    let marker = world.update_marker("4.168.2").await;
    assert_eq!(
        marker["published"],
        serde_json::json!({"debian-12-bookworm": {"instance": BUILDER, "suites": ["debian/bookworm", "debian/bookworm-4.168"]}})
    );

    // A staged file that is not the one the marker names stops the publish before the lease.
    world.stage_build("4.168.3").await;
    let swapped = format!("4.168.3/debian-12-bookworm/{BUILDER}/hhvm_4.168.3-1~bookworm_amd64.deb");
    world
        .put(&world.scratch, &swapped, b"changed after the build".to_vec())
        .await;
    let output = world.publish("4.168.3", "swapped", &[]);
    assert!(!output.status.success());
    let log = world.log("swapped");
    assert!(
        log.contains(&format!(
            "s3://{}/{swapped} is not the file the success marker of debian-12-bookworm names",
            world.scratch
        )),
        "{log}"
    );
    assert!(!log.contains("took the repository lease"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_suite_s_release_files_are_invalidated_right_after_its_switch() {
    let world = World::new("invalidation").await;
    world.stage_build("4.168.2").await;
    // An invalidation CloudFront refuses fails the job right after the first switch...
    let unknown = [("CLOUDFRONT_DISTRIBUTION_ID", "E0NOSUCHDISTRIBUTION")];
    let refused = world.publish("4.168.2", "refused", &unknown);
    assert!(!refused.status.success(), "{}", world.log("refused"));
    assert!(
        world.log("refused").contains(
            "/debian/dists/bookworm was switched but CloudFront did not take the invalidation of its Release files"
        ),
        "{}",
        world.log("refused")
    );
    // ...and a re-run switches again and invalidates each suite.
    let cloudfront = aws_sdk_cloudfront::Client::new(&moto().server.sdk_config().await);
    let distribution = pipeline_testing::cloudfront::create_distribution(&cloudfront).await;
    let settings = [("CLOUDFRONT_DISTRIBUTION_ID", distribution.as_str())];
    assert_succeeded(&world.publish("4.168.2", "run", &settings), &world, "run");

    let mut invalidated: Vec<Vec<String>> = pipeline_testing::cloudfront::invalidations(&cloudfront, &distribution)
        .await
        .into_iter()
        .map(|(_, mut paths)| {
            paths.sort();
            paths
        })
        .collect();
    invalidated.sort();
    let release_files =
        |suite: &str| ["InRelease", "Release", "Release.gpg"].map(|name| format!("/debian/dists/{suite}/{name}"));
    assert_eq!(
        invalidated,
        [release_files("bookworm-4.168"), release_files("bookworm")]
    );
    let log = world.log("run");
    let lines: Vec<&str> = log.lines().collect();
    for suite in ["bookworm", "bookworm-4.168"] {
        let switched = lines
            .iter()
            .position(|line| line.ends_with(&format!("switched debian/dists/{suite}")))
            .unwrap_or_else(|| panic!("no switch of {suite}:\n{log}"));
        assert!(
            lines[switched + 1].contains(&format!(
                "invalidated /debian/dists/{suite}/InRelease, Release and Release.gpg"
            )),
            "the line after the switch of {suite}: {:?}",
            lines[switched + 1]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_package_with_other_content_is_never_replaced() {
    let world = World::new("conflict").await;
    world.stage_build("4.168.2").await;
    let pool = "debian/pool/main/h/hhvm/hhvm_4.168.2-1~bookworm_amd64.deb";
    world.put(&world.downloads, pool, b"another build".to_vec()).await;
    let output = world.publish("4.168.2", "run", &[]);
    assert!(!output.status.success());
    assert!(
        world.log("run").contains("is published with other content"),
        "{}",
        world.log("run")
    );
    assert_eq!(world.get(&world.downloads, pool).await.unwrap(), b"another build");
    assert!(
        world
            .get(&world.downloads, "debian/dists/bookworm/InRelease")
            .await
            .is_none()
    );
    assert!(
        world.get(&world.scratch, "locks/apt-repositories.json").await.is_none(),
        "released on failure"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_publishes_at_once_take_turns_and_both_are_published() {
    let world = World::new("concurrent").await;
    world.stage_build("4.168.1").await;
    world.stage_build("4.168.2").await;
    let fast = [("REPOSITORY_LEASE_POLL_SECONDS", "1")];
    let mut first = world.publisher("4.168.1", "a", &fast).spawn().unwrap();
    let mut second = world.publisher("4.168.2", "b", &fast).spawn().unwrap();
    let (a, b) = (first.wait().unwrap(), second.wait().unwrap());
    assert!(a.success(), "{}", world.log("a"));
    assert!(b.success(), "{}", world.log("b"));
    assert_eq!(
        world.packages_of("bookworm").await,
        [
            "hhvm 4.168.1-1~bookworm",
            "hhvm 4.168.2-1~bookworm",
            "hhvm-dev 4.168.1-1~bookworm",
            "hhvm-dev 4.168.2-1~bookworm"
        ]
    );
    // The critical sections, from each worker's own log, do not overlap.
    let section = |run: &str| {
        let log = world.log(run);
        let time = |needle: &str| {
            log.lines()
                .find(|line| line.contains(needle))
                .map(|line| line[..20].to_string())
                .unwrap_or_else(|| panic!("{run} logged no {needle:?}:\n{log}"))
        };
        (time("took the repository lease"), time("released the repository lease"))
    };
    let (a, b) = (section("a"), section("b"));
    assert!(a.1 <= b.0 || b.1 <= a.0, "critical sections overlap: {a:?} {b:?}");
    assert!(
        world.log("a").contains("waiting for the repository lease")
            || world.log("b").contains("waiting for the repository lease"),
        "one of them waited, visibly"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_taken_over_and_a_live_one_is_waited_for_then_given_up_on() {
    let world = World::new("lease").await;
    world.stage_build("4.168.2").await;
    let lease = |expires: i64| {
        format!(
            r#"{{"holder": "i-crashed", "version": "4.168.1", "acquiredAt": "2026-12-01T00:00:00Z", "expiresAt": "later", "expiresEpoch": {expires}}}"#
        )
        .into_bytes()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    world
        .put(&world.scratch, "locks/apt-repositories.json", lease(now + 3600))
        .await;
    let waited = world.publish(
        "4.168.2",
        "held",
        &[
            ("REPOSITORY_LEASE_WAIT_MINUTES", "0"),
            ("REPOSITORY_LEASE_POLL_SECONDS", "1"),
        ],
    );
    assert!(!waited.status.success());
    let log = world.log("held");
    assert!(
        log.contains("waiting for the repository lease: i-crashed publishes 4.168.1"),
        "{log}"
    );
    assert!(log.contains("still being published by another worker"), "{log}");
    assert!(
        world
            .get(&world.downloads, "debian/dists/bookworm/InRelease")
            .await
            .is_none()
    );
    assert_eq!(
        world.get(&world.scratch, "locks/apt-repositories.json").await.unwrap(),
        lease(now + 3600),
        "another's lease is left alone"
    );

    world
        .put(&world.scratch, "locks/apt-repositories.json", lease(now - 1))
        .await;
    let took_over = world.publish("4.168.2", "expired", &[]);
    assert_succeeded(&took_over, &world, "expired");
    assert!(
        world
            .log("expired")
            .contains("taking over the expired repository lease of i-crashed"),
        "{}",
        world.log("expired")
    );
    assert!(world.get(&world.scratch, "locks/apt-repositories.json").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_release_changed_by_someone_else_is_not_overwritten() {
    let world = World::new("cas").await;
    world.stage_build("4.168.1").await;
    world.stage_build("4.168.2").await;
    assert_succeeded(&world.publish("4.168.1", "first", &[]), &world, "first");
    // A writer that ignores the lease changes InRelease between this publish's read and its
    // switch: the gpg stand-in below does it while the new Release is being signed.
    let stubs = world.dir.join("stubs-cas");
    std::fs::create_dir_all(&stubs).unwrap();
    let gpg = stubs.join("gpg");
    std::fs::write(
        &gpg,
        format!(
            "#!/bin/bash\nif [[ \" $* \" == *' --clearsign '* && ! -e {marker} ]]; then \
             echo another writer >{marker}; \
             aws s3api put-object --bucket {bucket} --key debian/dists/bookworm/InRelease --body {marker} >/dev/null; fi\n\
             exec /usr/bin/gpg \"$@\"\n",
            marker = world.dir.join("cas-done").display(),
            bucket = world.downloads
        ),
    )
    .unwrap();
    std::fs::set_permissions(&gpg, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut command = world.publisher("4.168.2", "second", &[]);
    let path = format!(
        "{}:{}",
        stubs.display(),
        command
            .get_envs()
            .find(|(k, _)| *k == "PATH")
            .and_then(|(_, v)| v)
            .unwrap()
            .to_string_lossy()
    );
    command.env("PATH", path);
    let output = command.output().unwrap();
    let log = world.log("second");
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("changed while this publish held the lease"), "{log}");
    assert_eq!(
        world
            .get(&world.downloads, "debian/dists/bookworm/InRelease")
            .await
            .unwrap(),
        b"another writer\n",
        "the other writer's InRelease stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_checker_finds_a_missing_index_and_a_changed_package() {
    let world = World::new("checker").await;
    world.stage_build("4.168.2").await;
    assert_succeeded(&world.publish("4.168.2", "run", &[]), &world, "run");
    let mut state = BTreeMap::new();
    let keys = world.published_keys("").await;
    for key in &keys {
        state.insert(key.to_string(), world.get(&world.downloads, key).await.unwrap());
    }
    assert_eq!(inconsistencies(&world, &state), Vec::<String>::new());

    let mut without_index = state.clone();
    without_index.retain(|key, _| !(key.starts_with("debian/dists/bookworm/") && key.contains("/by-hash/")));
    let problems = inconsistencies(&world, &without_index);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("debian/dists/bookworm/InRelease lists main/binary-amd64/Packages, but")),
        "{problems:?}"
    );
    let mut changed_package = state.clone();
    changed_package.insert(
        "debian/pool/main/h/hhvm/hhvm_4.168.2-1~bookworm_amd64.deb".into(),
        b"other".to_vec(),
    );
    let problems = inconsistencies(&world, &changed_package);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("indexes debian/pool/main/h/hhvm/hhvm_4.168.2-1~bookworm_amd64.deb")),
        "{problems:?}"
    );
}

#[test]
fn the_checker_reads_release_files_as_apt_does() {
    let release = Release::parse(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: HHVM\nAcquire-By-Hash: yes\nMD5Sum:\n \
         0123 10 main/binary-amd64/Packages\nSHA256:\n abcd 10 main/binary-amd64/Packages\n \
         ef01 20 main/binary-amd64/Packages.gz\n-----BEGIN PGP SIGNATURE-----\nxyz\n-----END PGP SIGNATURE-----\n",
    );
    assert!(release.by_hash);
    assert_eq!(release.sha256.len(), 2);
    assert_eq!(release.sha256["main/binary-amd64/Packages"], ("abcd".to_string(), 10));
    assert!(!Release::parse("Origin: HHVM\nSHA256:\n abcd 1 x\n").by_hash);
    assert_eq!(percent_decode("a%7Eb%2Fc"), "a~b/c");
}

#[test]
fn the_checker_sees_writes_and_deletes_of_one_bucket_only() {
    let recording = [
        r#"{"method": "PUT", "url": "http://127.0.0.1:1/dl/debian/pool/a%7E1.deb", "headers": {}}"#,
        r#"{"method": "PUT", "url": "http://127.0.0.1:1/other/x", "headers": {}}"#,
        r#"{"method": "PUT", "url": "http://127.0.0.1:1/dl/?versioning", "headers": {}}"#,
        r#"{"method": "GET", "url": "http://127.0.0.1:1/dl/debian/dists/bookworm/InRelease", "headers": {}}"#,
        r#"{"method": "PUT", "url": "http://127.0.0.1:1/dl/big.deb?partNumber=1&uploadId=u", "headers": {}}"#,
        r#"{"method": "POST", "url": "http://127.0.0.1:1/dl/big.deb?uploadId=u", "headers": {}}"#,
        r#"{"method": "DELETE", "url": "http://127.0.0.1:1/dl/debian/dists/bookworm/main/by-hash/SHA256/ab", "headers": {}}"#,
    ]
    .join("\n");
    let parsed = writes_of(&recording, "dl");
    assert_eq!(
        parsed,
        [
            Write::Put("debian/pool/a~1.deb".into()),
            Write::Put("big.deb".into()),
            Write::Delete("debian/dists/bookworm/main/by-hash/SHA256/ab".into())
        ]
    );
}
