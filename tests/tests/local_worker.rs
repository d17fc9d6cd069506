//! The local stack's EC2 worker runs the real user-data scripts that the real Lambdas put into
//! the instances they launch in moto: a source tarball (made from the fixture source
//! repository, signed with the run's key), binary packages (real `.deb` files), the apt
//! repository (indexed by `apt_repository.py`, read back over plain HTTP and checked with gpgv), publishing the
//! release's source, and a build made to fail. A fixture state machine runs Lambda tasks
//! through the Lambda service. Each check reads what was left in moto (S3 objects, instance states) or
//! in the fixture git repositories.
//!
//! One test: the stack takes a while to start (moto, the template's deployment, the functions,
//! the fixtures), and its phases build on each other.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pipeline_tests::{LocalStack, Options, WorkerRun, describe_event};
use serde_json::{Value, json};

const VERSION: &str = "4.168.2";
/// Bounds for waiting, far above what each step takes; no test asserts a duration.
const WORKER_TIMEOUT: Duration = Duration::from_secs(600);

async fn invoke_ok(stack: &LocalStack, function: &str, payload: &Value) -> Value {
    let invocation = stack
        .invoke(function, payload)
        .await
        .unwrap_or_else(|error| panic!("{function}: {error}"));
    assert_eq!(
        invocation.function_error, None,
        "{function} failed: {}",
        invocation.payload
    );
    invocation.payload
}

fn instances_of(output: &Value) -> Vec<String> {
    serde_json::from_value(output["instances"].clone()).expect("`instances` is a list of instance IDs")
}

async fn run_of_single_worker(stack: &LocalStack, output: &Value) -> WorkerRun {
    let instances = instances_of(output);
    assert_eq!(instances.len(), 1, "{output}");
    let runs = stack
        .wait_for_workers(&instances, WORKER_TIMEOUT)
        .await
        .expect("the worker finishes");
    runs.into_iter().next().expect("one run")
}

/// Waits until moto reports `id` terminated (`shutting-down` turns `terminated` on a later
/// describe).
async fn assert_terminated(stack: &LocalStack, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = stack.instance_state(id).await.expect("describe the instance");
        if state == "terminated" {
            return;
        }
        assert!(Instant::now() < deadline, "{id} is still {state}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}

fn command_output(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_workers_run_the_real_scripts_and_leave_real_artifacts() {
    let mut stack = LocalStack::start(Options::default())
        .await
        .unwrap_or_else(|error| panic!("the local stack starts: {error}"));
    let settings = stack.settings().clone();
    let scratch = settings.scratch_bucket.clone();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/local");
    let check_dir = stack.run_dir().join("test-checks");
    std::fs::create_dir_all(&check_dir).expect("create a directory for checks");

    // The source tarball: get-build-version says where it goes, build-source-tarball launches
    // the worker, the worker runs make-source-tarball.sh.
    let build = invoke_ok(
        &stack,
        "hhvm-get-build-version",
        &json!({"version": VERSION, "executionName": "local-worker-test"}),
    )
    .await;
    assert_eq!(
        build["source"],
        json!({"bucket": scratch, "path": format!("hhvm-{VERSION}.tar.gz")})
    );
    let launched = invoke_ok(&stack, "hhvm-build-source-tarball", &build).await;
    let run = run_of_single_worker(&stack, &launched).await;
    assert_eq!(run.job, "source-tarball");
    assert!(run.succeeded(), "the source tarball worker failed:\n{}", run.log());
    let tarball_key = format!("hhvm-{VERSION}.tar.gz");
    let keys = stack.list_keys(&scratch, "").await.expect("list scratch");
    for key in [
        tarball_key.clone(),
        format!("{tarball_key}.sig"),
        format!("{tarball_key}.sha256"),
        format!("markers/{VERSION}/source-tarball.json"),
        format!("logs/{VERSION}/source-tarball/{}.log", run.instance),
    ] {
        assert!(keys.contains(&key), "{key} missing from scratch: {keys:?}");
    }
    let tarball = stack.get_object(&scratch, &tarball_key).await.expect("get the tarball");
    let signature = stack
        .get_object(&scratch, &format!("{tarball_key}.sig"))
        .await
        .expect("get .sig");
    write_file(&check_dir.join(&tarball_key), &tarball);
    write_file(&check_dir.join("tarball.sig"), &signature);
    let listing = command_output("tar", &["-tzf", &check_dir.join(&tarball_key).to_string_lossy()]);
    assert!(listing.contains(&format!("hhvm-{VERSION}/hphp/main.cpp")), "{listing}");
    // Signed with the run's key: gpgv checks it against the public keyring only.
    command_output(
        "gpgv",
        &[
            "--keyring",
            &settings.public_keyring.to_string_lossy(),
            &check_dir.join("tarball.sig").to_string_lossy(),
            &check_dir.join(&tarball_key).to_string_lossy(),
        ],
    );
    let marker: Value = serde_json::from_slice(
        &stack
            .get_object(&scratch, &format!("markers/{VERSION}/source-tarball.json"))
            .await
            .expect("get the marker"),
    )
    .expect("the marker is JSON");
    assert_eq!(marker["instance"], run.instance.as_str());
    assert_eq!(marker["packagingBranch"], "HHVM-4.168");
    assert_terminated(&stack, &run.instance).await;

    // A state machine from a file: placeholders substituted, Lambda tasks invoked through the
    // Lambda service, a typed error caught by name.
    let machines = stack
        .register_state_machines(&fixtures.join("state-machines"))
        .await
        .unwrap_or_else(|error| panic!("register the fixture state machine: {error}"));
    assert_eq!(machines.keys().collect::<Vec<_>>(), ["hhvm-check-source"]);
    let mut events = Vec::new();
    let found = stack
        .start_execution("check-source", "found", &json!({"version": VERSION}))
        .await
        .expect("start an execution");
    let outcome = stack
        .wait_for_execution(&found, WORKER_TIMEOUT, |event| events.push(describe_event(event)))
        .await
        .expect("the execution ends");
    assert!(outcome.succeeded(), "{outcome:?}\n{}", events.join("\n"));
    assert_eq!(outcome.output.as_ref().map(|o| &o["source"]), Some(&build["source"]));
    assert!(events.iter().any(|e| e.contains("ExecutionSucceeded")), "{events:?}");
    let missing = stack
        .start_execution("hhvm-check-source", "missing", &json!({"version": "4.168.3"}))
        .await
        .expect("start an execution");
    let outcome = stack
        .wait_for_execution(&missing, WORKER_TIMEOUT, |_| {})
        .await
        .expect("the execution ends");
    assert_eq!(
        (outcome.status.as_str(), outcome.error.as_deref()),
        ("FAILED", Some("NoSourceTarball")),
        "{outcome:?}"
    );

    // Binary packages of one distro: real .deb files, checksums, the marker.
    let distro = "debian-12-bookworm";
    let request = json!({"version": VERSION, "source": build["source"], "distros": [distro],
                         "executionName": "local-worker-test"});
    let launched = invoke_ok(&stack, "hhvm-build-binary-packages", &request).await;
    let run = run_of_single_worker(&stack, &launched).await;
    assert_eq!(
        (run.job.as_str(), run.distro.as_deref()),
        ("binary-package", Some(distro))
    );
    assert!(run.succeeded(), "the binary package worker failed:\n{}", run.log());
    // Staged under the attempt's own prefix, which the marker names.
    let prefix = format!("{VERSION}/{distro}/{}/", run.instance);
    let staged = stack
        .list_keys(&scratch, &format!("{VERSION}/{distro}/"))
        .await
        .expect("list the staged packages");
    let package = format!("{prefix}hhvm_{VERSION}-1~bookworm_amd64.deb");
    for key in [
        package.clone(),
        format!("{prefix}hhvm-dev_{VERSION}-1~bookworm_amd64.deb"),
        format!("{prefix}hhvm_{VERSION}-1~bookworm_amd64.changes"),
        format!("{prefix}SHA256SUMS"),
    ] {
        assert!(staged.contains(&key), "{key} missing: {staged:?}");
    }
    assert!(
        !staged.iter().any(|k| k.ends_with(".tar.gz")),
        "the tarball is not staged: {staged:?}"
    );
    let deb = check_dir.join("hhvm.deb");
    write_file(&deb, &stack.get_object(&scratch, &package).await.expect("get the .deb"));
    let fields = command_output(
        "dpkg-deb",
        &["--field", &deb.to_string_lossy(), "Package", "Version", "Architecture"],
    );
    assert_eq!(
        fields,
        format!("Package: hhvm\nVersion: {VERSION}-1~bookworm\nArchitecture: amd64\n")
    );
    let marker: Value = serde_json::from_slice(
        &stack
            .get_object(&scratch, &format!("markers/{VERSION}/binary-package/{distro}.json"))
            .await
            .expect("get the binary package marker"),
    )
    .expect("the marker is JSON");
    assert_eq!(marker["packageVersion"], format!("{VERSION}-1~bookworm").as_str());
    assert_eq!(marker["distro"], distro);
    assert_eq!(marker["instance"], run.instance.as_str());
    assert_eq!(marker["executionName"], "local-worker-test");
    assert_eq!(marker["artifacts"], format!("s3://{scratch}/{prefix}").as_str());
    assert_terminated(&stack, &run.instance).await;

    // The apt repository: update-repos.sh indexes the packages by hash, signs with the
    // run's key, and uploads to the downloads bucket, which apt reads over plain HTTP.
    let launched = invoke_ok(
        &stack,
        "hhvm-update-repositories",
        &json!({"version": VERSION, "distros": [distro], "executionName": "local-worker-test"}),
    )
    .await;
    let run = run_of_single_worker(&stack, &launched).await;
    assert!(run.succeeded(), "the repository worker failed:\n{}", run.log());
    let repository = format!("{}/{}/debian", stack.endpoint(), settings.downloads_bucket);
    for dist in ["bookworm", "bookworm-4.168"] {
        let in_release = check_dir.join(format!("InRelease-{dist}"));
        command_output(
            "curl",
            &[
                "-fsS",
                "-o",
                &in_release.to_string_lossy(),
                &format!("{repository}/dists/{dist}/InRelease"),
            ],
        );
        command_output(
            "gpgv",
            &[
                "--keyring",
                &settings.public_keyring.to_string_lossy(),
                &in_release.to_string_lossy(),
            ],
        );
        let packages = command_output(
            "curl",
            &["-fsS", &format!("{repository}/dists/{dist}/main/binary-amd64/Packages")],
        );
        assert!(
            packages.contains(&format!("Package: hhvm\nSource: hhvm\nVersion: {VERSION}-1~bookworm")),
            "{dist}: {packages}"
        );
    }
    let pooled = check_dir.join("pooled.deb");
    command_output(
        "curl",
        &[
            "-fsS",
            "-o",
            &pooled.to_string_lossy(),
            &format!("{repository}/pool/main/h/hhvm/hhvm_{VERSION}-1~bookworm_amd64.deb"),
        ],
    );
    assert_eq!(
        std::fs::read(&pooled).ok(),
        std::fs::read(&deb).ok(),
        "the pool holds the built package"
    );
    assert_terminated(&stack, &run.instance).await;

    // Publishing the release's source: the tag goes from the staging repository to the public
    // one, the tarball from scratch to the downloads bucket.
    let launched = invoke_ok(
        &stack,
        "hhvm-publish-release-source",
        &json!({"version": VERSION, "executionName": "local-worker-test"}),
    )
    .await;
    let run = run_of_single_worker(&stack, &launched).await;
    assert!(run.succeeded(), "the publishing worker failed:\n{}", run.log());
    let published = stack
        .list_keys(&settings.downloads_bucket, "source/")
        .await
        .expect("list the published source");
    assert_eq!(
        published,
        [
            format!("source/{tarball_key}"),
            format!("source/{tarball_key}.sha256"),
            format!("source/{tarball_key}.sig")
        ]
    );
    let public_refs = command_output("git", &["ls-remote", &settings.public_repo_url]);
    assert!(
        public_refs.contains(&format!("refs/tags/HHVM-{VERSION}")),
        "{public_refs}"
    );
    assert!(public_refs.contains("refs/heads/HHVM-4.168"), "{public_refs}");
    assert_terminated(&stack, &run.instance).await;

    // A build made to fail: the worker exits non-zero, uploads its log, writes no marker, and
    // the instance still ends terminated.
    let failing = "ubuntu-24.04-noble";
    stack
        .fail_builds_of(failing, Some(VERSION))
        .expect("set the failure knob");
    let request = json!({"version": VERSION, "source": build["source"], "distros": [failing],
                         "executionName": "local-worker-test"});
    let launched = invoke_ok(&stack, "hhvm-build-binary-packages", &request).await;
    let run = run_of_single_worker(&stack, &launched).await;
    assert!(!run.succeeded(), "the build should have failed:\n{}", run.log());
    assert!(run.log().contains("fails on purpose"), "{}", run.log());
    let keys = stack.list_keys(&scratch, "").await.expect("list scratch");
    assert!(
        !keys.contains(&format!("markers/{VERSION}/binary-package/{failing}.json")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("logs/{VERSION}/binary-package/{failing}/{}.log", run.instance)),
        "{keys:?}"
    );
    assert_terminated(&stack, &run.instance).await;

    stack.stop();
}
