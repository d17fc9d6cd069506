//! create-s3-index-html against moto's S3 and CloudFront through the real SDK clients, over a
//! bucket of a few thousand keys.

use std::collections::BTreeSet;

use aws_sdk_s3::primitives::ByteStream;
use create_s3_index_html::page::render_index_page;
use create_s3_index_html::{Config, directory_at, handle_at, write_page};
use pipeline_testing::cloudfront::{create_distribution, invalidation_count};
use pipeline_testing::requests::RequestCounter;
use pipeline_testing::{MotoServer, create_bucket, unique_name, unreachable_sdk_config};
use serde_json::{Value, json};

struct Clients {
    s3: aws_sdk_s3::Client,
    cloudfront: aws_sdk_cloudfront::Client,
}

async fn clients() -> Clients {
    let config = MotoServer::shared().sdk_config().await;
    Clients {
        s3: pipeline_aws::s3_client(&config),
        cloudfront: aws_sdk_cloudfront::Client::new(&config),
    }
}

/// The S3 requests a run sends, by operation.
fn s3_requests(counter: &RequestCounter) -> Vec<(String, u64)> {
    counter.counts().into_iter().collect()
}

/// The keys of the test bucket: big and small directories, deep paths, folder markers, a
/// foreign root page, names that need escaping, and keys without a URL.
fn bucket_keys() -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    keys.extend((0..1200).map(|i| format!("debian/pool/main/h/hhvm/hhvm_4.{i}.0-1~bookworm_amd64.deb")));
    keys.extend((0..500).map(|i| {
        format!(
            "source/nightlies/hhvm-nightly-2026.{:02}.{:02}.tar.gz",
            i / 28 + 1,
            i % 28 + 1
        )
    }));
    for d in 0..30 {
        keys.extend((0..10).map(|f| format!("ubuntu/dists/d{d}/main/f{f}")));
    }
    keys.extend(
        [
            "a/b/c/d/e/deep.txt",
            "debian/",
            "empty-dir/",
            "index.html",
            "README.txt",
            "weird/a b&c<d>.txt",
            "weird/quote\"s'.txt",
            "weird/ünïcödé.txt",
            "weird/star*?#.txt",
            "weird//no-url.txt",
        ]
        .map(String::from),
    );
    keys
}

/// Directories a page is expected for, computed independently of the Lambda's walker.
fn expected_directories(keys: &[String]) -> BTreeSet<String> {
    let mut directories = BTreeSet::from([String::new()]);
    for key in keys.iter().filter(|k| !k.contains("//")) {
        let segments: Vec<&str> = key.split('/').collect();
        for depth in 1..segments.len() {
            directories.insert(segments[..depth].join("/"));
        }
    }
    directories
}

async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in keys.chunks(keys.len().div_ceil(16).max(1)) {
        let (s3, bucket, chunk) = (s3.clone(), bucket.to_string(), chunk.to_vec());
        tasks.spawn(async move {
            for key in chunk {
                let body = if key == "index.html" {
                    "<html>an old page</html>".to_string()
                } else {
                    format!("content of {key}")
                };
                s3.put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .body(ByteStream::from(body.into_bytes()))
                    .send()
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
}

async fn page(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let output = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e:?}"));
    assert_eq!(output.content_type(), Some("text/html; charset=utf-8"), "{key}");
    String::from_utf8(output.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn pages_are_written_once_and_only_changed_pages_are_rewritten_and_invalidated() {
    let clients = clients().await;
    let bucket = create_bucket(&clients.s3, "downloads").await;
    let distribution = create_distribution(&clients.cloudfront).await;
    let keys = bucket_keys();
    upload(&clients.s3, &bucket, &keys).await;
    let directories = expected_directories(&keys);
    let config = Config {
        default_bucket: None,
        distribution_id: Some(distribution.clone()),
        invalidation_path_cap: 20,
    };
    let input = json!({"bucket": bucket, "executionName": "publish-1", "unknown": {"kept": [1, null]}});

    // The function's own S3 client counts its requests.
    let counter = RequestCounter::default();
    let counted = counter.s3(&clients.s3);

    // First run: every directory gets a page, the foreign root page is replaced unread.
    let output = handle_at(
        &counted,
        &clients.cloudfront,
        &config,
        input.clone(),
        "2026-11-21T10:00:00Z",
    )
    .await
    .unwrap();
    let summary = &output["indexPages"];
    assert_eq!(summary["objectsListed"], keys.len());
    assert_eq!(summary["keysSkipped"], 1);
    assert_eq!(summary["directories"], directories.len());
    assert_eq!(summary["pagesWritten"], directories.len());
    assert_eq!(summary["pagesUnchanged"], 0);
    let listings = keys.len().div_ceil(1000) as u64;
    assert_eq!(
        s3_requests(&counter),
        [
            ("ListObjectsV2".to_string(), listings),
            ("PutObject".to_string(), directories.len() as u64)
        ]
    );
    let invalidation = &summary["invalidation"];
    let path_count = invalidation["pathCount"].as_u64().unwrap();
    assert!((1..=20).contains(&path_count), "{invalidation}");
    assert_eq!(invalidation["distributionId"], distribution);
    assert_eq!(invalidation_count(&clients.cloudfront, &distribution).await, 1);
    assert_eq!(output["unknown"], input["unknown"]);
    assert!(
        serde_json::to_string(&output).unwrap().len() < 2000,
        "the output stays small: {output}"
    );
    for directory in &directories {
        let key = if directory.is_empty() {
            "index.html".to_string()
        } else {
            format!("{directory}/index.html")
        };
        assert!(
            page(&clients.s3, &bucket, &key).await.starts_with("<!DOCTYPE html>"),
            "{key}"
        );
    }

    let root = page(&clients.s3, &bucket, "index.html").await;
    for link in ["debian/", "empty-dir/", "weird/", "a/", "source/", "ubuntu/"] {
        assert!(
            root.contains(&format!(r#"<a href="{link}">{link}</a>"#)),
            "root lacks {link}: {root}"
        );
    }
    assert!(root.contains(r#"<a href="README.txt">README.txt</a>"#), "{root}");
    assert!(
        !root.contains(r#"href="index.html""#),
        "a page does not list itself: {root}"
    );
    assert!(!root.contains("an old page"), "{root}");

    let weird = page(&clients.s3, &bucket, "weird/index.html").await;
    assert!(weird.contains(r#"href="a%20b%26c%3Cd%3E.txt""#), "{weird}");
    assert!(weird.contains("a b&amp;c&lt;d&gt;.txt"), "{weird}");
    assert!(
        weird.contains("quote&quot;s&#x27;.txt") || weird.contains("quote&quot;s&#39;.txt"),
        "{weird}"
    );
    assert!(weird.contains(r#"href="%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt""#), "{weird}");
    assert!(weird.contains(r#"href="star%2A%3F%23.txt""#), "{weird}");
    assert!(!weird.contains("no-url"), "{weird}");
    assert!(weird.contains(r#"<a href="/">..</a>"#), "{weird}");

    let debian = page(&clients.s3, &bucket, "debian/index.html").await;
    assert!(!debian.contains(r#"href="""#), "a folder marker is no file: {debian}");
    assert!(debian.contains(r#"<a href="pool/">pool/</a>"#), "{debian}");
    assert!(
        page(&clients.s3, &bucket, "empty-dir/index.html")
            .await
            .contains("This directory is empty.")
    );
    let pool = page(&clients.s3, &bucket, "debian/pool/main/h/hhvm/index.html").await;
    assert_eq!(pool.matches("📃").count(), 1200);
    assert!(pool.contains(r#"<a href="/debian/pool/main/h/">..</a>"#), "{pool}");

    // Second run, later: nothing changed, so nothing is read, written or invalidated.
    counter.reset();
    let again = handle_at(
        &counted,
        &clients.cloudfront,
        &config,
        input.clone(),
        "2026-11-22T10:00:00Z",
    )
    .await
    .unwrap();
    assert_eq!(again["indexPages"]["pagesWritten"], 0);
    assert_eq!(again["indexPages"]["pagesUnchanged"], directories.len());
    assert_eq!(again["indexPages"]["invalidation"], Value::Null);
    assert_eq!(invalidation_count(&clients.cloudfront, &distribution).await, 1);
    assert_eq!(
        s3_requests(&counter),
        [("ListObjectsV2".to_string(), listings)],
        "an unchanged bucket costs its listing alone"
    );
    let root_before = page(&clients.s3, &bucket, "index.html").await;

    // One new package: only its directory's page is rewritten and invalidated.
    upload(
        &clients.s3,
        &bucket,
        &["debian/pool/main/h/hhvm/hhvm_9.9.9-1~bookworm_amd64.deb".to_string()],
    )
    .await;
    let input = json!({"bucket": bucket, "executionName": "publish-2"});
    counter.reset();
    let third = handle_at(&counted, &clients.cloudfront, &config, input, "2026-11-23T10:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        s3_requests(&counter),
        [("ListObjectsV2".to_string(), listings), ("PutObject".to_string(), 1)]
    );
    let summary = &third["indexPages"];
    assert_eq!(summary["pagesWritten"], 1);
    assert_eq!(summary["changedDirectories"], json!(["/debian/pool/main/h/hhvm/"]));
    assert_eq!(summary["invalidation"]["paths"], json!(["/debian/pool/main/h/hhvm/"]));
    assert_eq!(invalidation_count(&clients.cloudfront, &distribution).await, 2);
    let pool = page(&clients.s3, &bucket, "debian/pool/main/h/hhvm/index.html").await;
    assert!(pool.contains("hhvm_9.9.9-1~bookworm_amd64.deb"), "{pool}");
    assert_eq!(
        page(&clients.s3, &bucket, "index.html").await,
        root_before,
        "the root page was kept"
    );
}

#[tokio::test]
async fn after_a_publish_only_what_it_changed_is_listed_and_reindexed() {
    let clients = clients().await;
    let bucket = create_bucket(&clients.s3, "published").await;
    // Other work, which a publish of 4.168.2 does not touch: enough that listing any of it
    // would show in the objects listed (under 40 below). Not the million keys of the real
    // bucket: every key is a PUT into moto (the benchmark's update runs on a million).
    let mut keys: Vec<String> = (0..300)
        .map(|i| format!("ubuntu/pool/main/h/hhvm-nightly/hhvm-nightly_2025.{i:04}-1~noble_amd64.deb"))
        .collect();
    keys.extend((0..200).map(|i| format!("other/stuff/{i:04}.txt")));
    keys.extend(
        [
            "debian/dists/bookworm/InRelease",
            "ubuntu/dists/noble/InRelease",
            "source/hhvm-4.167.5.tar.gz",
            "source/nightlies/hhvm-nightly-2025.0001.tar.gz",
            "conf/hhvm.gpg.key",
        ]
        .map(String::from),
    );
    upload(&clients.s3, &bucket, &keys).await;
    let config = Config {
        default_bucket: None,
        distribution_id: None,
        invalidation_path_cap: 100,
    };
    let whole = json!({"bucket": bucket});
    handle_at(&clients.s3, &clients.cloudfront, &config, whole.clone(), "t0")
        .await
        .unwrap();

    // The publish: its packages in both pools, a new suite, a suite updated, its source.
    let published = [
        "debian/pool/main/h/hhvm/hhvm_4.168.2-1~bookworm_amd64.deb",
        "ubuntu/pool/main/h/hhvm/hhvm_4.168.2-1~noble_amd64.deb",
        "debian/dists/bookworm-4.168/InRelease",
        "ubuntu/dists/noble/InRelease",
        "source/hhvm-4.168.2.tar.gz",
    ]
    .map(String::from);
    // A second apart, so the updated suite's file shows a new time.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    upload(&clients.s3, &bucket, &published).await;
    let counter = RequestCounter::default();
    let counted = counter.s3(&clients.s3);
    let input = json!({"bucket": bucket, "version": "4.168.2", "executionName": "publish-4.168.2"});
    let output = handle_at(&counted, &clients.cloudfront, &config, input, "t1")
        .await
        .unwrap();
    let summary = &output["indexPages"];
    assert_eq!(
        summary["reindexed"],
        json!([
            "/debian/dists/",
            "/debian/pool/main/h/hhvm/",
            "/source/",
            "/ubuntu/dists/",
            "/ubuntu/pool/main/h/hhvm/"
        ])
    );
    // Five sub-trees, and nine ancestors' levels: …/pool/main/h, …/pool/main, …/pool, the two
    // repositories and the root; the nightly pool and other/ are never listed.
    assert_eq!(
        s3_requests(&counter),
        [
            ("ListObjectsV2".to_string(), 14),
            ("PutObject".to_string(), summary["pagesWritten"].as_u64().unwrap())
        ],
        "{summary}"
    );
    assert!(summary["objectsListed"].as_u64().unwrap() < 40, "{summary}");
    let mut written: Vec<&str> = Vec::new();
    for directory in summary["changedDirectories"].as_array().unwrap() {
        written.push(directory.as_str().unwrap());
    }
    written.sort_unstable();
    assert_eq!(
        written,
        [
            "/debian/dists/",
            "/debian/dists/bookworm-4.168/",
            "/debian/pool/",
            "/debian/pool/main/",
            "/debian/pool/main/h/",
            "/debian/pool/main/h/hhvm/",
            "/source/",
            "/ubuntu/dists/noble/",
            "/ubuntu/pool/main/h/",
            "/ubuntu/pool/main/h/hhvm/"
        ],
        "the new and changed directories (debian had no pool yet), and the ancestors that gained one"
    );
    assert!(
        page(&clients.s3, &bucket, "debian/pool/main/h/index.html")
            .await
            .contains(r#"<a href="hhvm/">hhvm/</a>"#)
    );

    // Nothing the publish changed was left stale: the whole bucket has nothing to write.
    let after = handle_at(&clients.s3, &clients.cloudfront, &config, whole, "t2")
        .await
        .unwrap();
    assert_eq!(after["indexPages"]["pagesWritten"], 0, "{}", after["indexPages"]);
    let forced = json!({"bucket": bucket, "version": "4.168.2", "wholeBucket": true});
    let forced = handle_at(&clients.s3, &clients.cloudfront, &config, forced, "t3")
        .await
        .unwrap();
    assert_eq!(forced["indexPages"]["reindexed"], json!(["/"]));
}

/// A whole-bucket run of `bucket` without a distribution (any CloudFront call through its client
/// would fail) and without `bucket` in the input, as the state machines call it:
/// DOWNLOADS_BUCKET's.
async fn index_whole(s3: &aws_sdk_s3::Client, bucket: &str) -> Value {
    let cloudfront = aws_sdk_cloudfront::Client::new(&unreachable_sdk_config().await);
    let config = Config {
        default_bucket: Some(bucket.parse().unwrap()),
        ..Config::default()
    };
    handle_at(s3, &cloudfront, &config, json!({}), "2026-11-21T10:00:00Z")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_page_another_run_wrote_since_the_listing_is_rendered_from_a_new_listing_not_overwritten() {
    let s3 = clients().await.s3;
    let bucket = create_bucket(&s3, "downloads").await;
    let name: pipeline_core::BucketName = bucket.parse().unwrap();
    upload(&s3, &bucket, &["d/a.txt".to_string()]).await;
    index_whole(&s3, &bucket).await;
    // This run lists `d` now, with its page as the first run wrote it …
    let (listed, _) = directory_at(&s3, &name, "d").await.unwrap().expect("d exists");
    assert!(listed.stored_page_etag.is_some());
    // … then another run publishes d/b.txt and writes d's page first.
    upload(&s3, &bucket, &["d/b.txt".to_string()]).await;
    index_whole(&s3, &bucket).await;
    let newer = page(&s3, &bucket, "d/index.html").await;
    assert!(newer.contains("b.txt"), "{newer}");

    // Its older listing's page (a changed page, to its eyes) is not written over the newer one:
    // the new listing of d renders what is already there.
    let older_page = render_index_page(&listed);
    assert!(!older_page.contains("b.txt"));
    let write = write_page(&s3, &name, listed.clone(), older_page.clone())
        .await
        .unwrap();
    assert_eq!(
        (write.written, write.relisted, write.objects_relisted),
        (false, 1, 3),
        "{write:?}"
    );
    assert_eq!(page(&s3, &bucket, "d/index.html").await, newer, "the newer page stands");

    // When what the other writer left is out of date too (here a page of its own, and a file
    // it did not list), the page rendered from the new listing is written.
    upload(&s3, &bucket, &["d/c.txt".to_string()]).await;
    s3.put_object()
        .bucket(&bucket)
        .key("d/index.html")
        .content_type("text/html; charset=utf-8")
        .body(ByteStream::from_static(b"<html>someone else's page</html>"))
        .send()
        .await
        .unwrap();
    let write = write_page(&s3, &name, listed, older_page).await.unwrap();
    assert_eq!((write.written, write.relisted), (true, 1), "{write:?}");
    let written = page(&s3, &bucket, "d/index.html").await;
    assert!(
        ["a.txt", "b.txt", "c.txt"].iter().all(|file| written.contains(file)),
        "{written}"
    );
    assert_eq!(
        index_whole(&s3, &bucket).await["indexPages"]["pagesWritten"],
        0,
        "all up to date"
    );

    // A page the listing did not see, created meanwhile, is not overwritten blindly either.
    upload(&s3, &bucket, &["e/x.txt".to_string()]).await;
    let (unseen, _) = directory_at(&s3, &name, "e").await.unwrap().expect("e exists");
    assert_eq!(unseen.stored_page_etag, None);
    index_whole(&s3, &bucket).await;
    let write = write_page(&s3, &name, unseen.clone(), render_index_page(&unseen))
        .await
        .unwrap();
    assert_eq!((write.written, write.relisted), (false, 1), "{write:?}");
}

#[tokio::test]
async fn without_a_distribution_pages_are_written_and_nothing_is_invalidated() {
    let clients = clients().await;
    let bucket = create_bucket(&clients.s3, "downloads").await;
    upload(&clients.s3, &bucket, &["source/hhvm-4.168.2.tar.gz".to_string()]).await;
    let output = index_whole(&clients.s3, &bucket).await;
    assert_eq!(output["indexPages"]["pagesWritten"], 2);
    assert_eq!(output["indexPages"]["changedDirectories"], json!(["/source/", "/"]));
    assert_eq!(output["indexPages"]["invalidation"], Value::Null);
}

#[tokio::test]
async fn a_missing_bucket_is_a_refused_request_not_retried() {
    let clients = clients().await;
    let input = json!({"bucket": unique_name("no-such-bucket")});
    let error = handle_at(&clients.s3, &clients.cloudfront, &Config::default(), input, "now")
        .await
        .unwrap_err();
    // A 404 does not pass with time: the machines must not retry it like throttling.
    assert_eq!(error.error_type(), "AwsRequestRefused");
    assert!(error.to_string().contains("ListObjectsV2"), "{error}");
    assert!(error.to_string().contains("NoSuchBucket"), "{error}");
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_writes_nothing() {
    let unreachable = unreachable_sdk_config().await;
    let s3 = pipeline_aws::s3_client(&unreachable);
    let cloudfront = aws_sdk_cloudfront::Client::new(&unreachable);
    let cases = [
        (json!({}), "`bucket`: missing"),
        (json!({"bucket": "Bad_Bucket"}), "not a valid S3 bucket name"),
        (json!({"bucket": 5}), "`bucket`"),
        (
            json!({"bucket": "hhvm-downloads", "cloudfront": "lower-case"}),
            "`cloudfront`",
        ),
        (
            json!({"bucket": "hhvm-downloads", "executionName": 1}),
            "`executionName`",
        ),
        (json!([]), "expected a JSON object"),
        (
            json!({"bucket": "hhvm-downloads", "wholeBucket": "yes"}),
            "`wholeBucket`",
        ),
        (
            json!({"bucket": "hhvm-downloads", "distros": ["fedora"]}),
            "`distros[0]`",
        ),
    ];
    for (input, text) in cases {
        let error = handle_at(&s3, &cloudfront, &Config::default(), input.clone(), "now")
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput", "{input}: {error}");
        assert!(error.to_string().contains(text), "{input}: {error}");
    }
    let error = handle_at(
        &s3,
        &cloudfront,
        &Config::default(),
        json!({"bucket": "hhvm-downloads", "version": "4.168"}),
        "now",
    )
    .await
    .unwrap_err();
    assert_eq!(error.error_type(), "InvalidVersion", "{error}");
    // A deployment's pages go to its download bucket and its distribution only.
    let deployed = Config {
        default_bucket: Some("hhvm-downloads".parse().unwrap()),
        distribution_id: Some("E35YBTV6QCR5BA".to_string()),
        ..Config::default()
    };
    for (input, text) in [
        (json!({"bucket": "hhvm-scratch"}), "`bucket`: is hhvm-scratch"),
        (json!({"cloudfront": "EOTHER1"}), "`cloudfront`: is EOTHER1"),
        (json!({"executionName": "run\n1"}), "`executionName`"),
    ] {
        let error = handle_at(&s3, &cloudfront, &deployed, input.clone(), "now")
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput", "{input}: {error}");
        assert!(error.to_string().contains(text), "{input}: {error}");
    }
}
