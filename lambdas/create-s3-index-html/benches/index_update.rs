//! The index *update* at scale, through the function's own handler: a download bucket of
//! 1,000,000 keys, laid out as the real one is (two apt repositories with years of releases
//! and nightlies, their suites with by-hash indexes, the source tarballs, and an archive of
//! older downloads), is indexed whole; then a nightly's files are added, as the update worker
//! and the source publish write them, and the publish's update (`version`) runs. For
//! comparison, a whole-bucket re-index runs after the same nightly on a copy of the bucket,
//! and a whole-bucket run after the update must find nothing left to write.
//!
//! S3 is an in-memory bucket behind aws-smithy-mocks rules (ListObjectsV2 with prefixes,
//! delimiters and continuation, PutObject with its MD5 ETag and its preconditions checked): no
//! emulator lists a million keys fast enough for a benchmark. The wall times are therefore the
//! function's own work, with no network; on S3 each request adds its round trip, which makes
//! the request counts the figure that matters. Prints a summary and, last, a `RESULT {json}` line.
//!
//! `cargo bench -p create-s3-index-html --bench index_update`

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::list_objects_v2::{ListObjectsV2Input, ListObjectsV2Output};
use aws_sdk_s3::operation::put_object::{PutObjectInput, PutObjectOutput};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_sdk_s3::types::{CommonPrefix, Object};
use aws_smithy_mocks::mock;
use create_s3_index_html::Config;
use md5::{Digest, Md5};
use pipeline_core::Version;
use pipeline_core::layout::{REPOSITORY_OSES, pool_directory, public_source_key};
use pipeline_testing::mocked_client;
use serde_json::{Value, json};

const BUCKET: &str = "dl.hhvm.com";
const TOTAL_KEYS: usize = 1_000_000;
/// The nightly the benchmark publishes.
const NIGHTLY: &str = "2026.12.02";
const SUITES: [(&str, &[&str]); 2] = [("debian", &["bookworm", "trixie"]), ("ubuntu", &["jammy", "noble"])];
const PACKAGES: [&str; 3] = ["", "-dbg", "-dev"];
const ARCHITECTURES: [&str; 2] = ["amd64", "arm64"];
/// Releases in each repository's pool and in `source/` (4.0 to 4.172 with their patches).
const RELEASES: usize = 450;
/// Nightlies kept in each repository's pool and in `source/nightlies/` (two years).
const NIGHTLIES: usize = 730;
/// by-hash files kept per index directory.
const BY_HASH_KEPT: usize = 40;
/// Files per directory of the archive that makes up the rest of the bucket.
const ARCHIVE_FILES_PER_DIRECTORY: usize = 1_000;

#[derive(Debug, Clone)]
struct StoredObject {
    size: i64,
    last_modified: i64,
    e_tag: String,
}

type Bucket = Arc<Mutex<BTreeMap<String, StoredObject>>>;

/// Requests by kind, as the in-memory S3 answered them.
#[derive(Debug, Clone, Default)]
struct Requests(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Requests {
    fn add(&self, kind: &'static str) {
        *self.0.lock().unwrap().entry(kind).or_default() += 1;
    }
    fn take(&self) -> BTreeMap<&'static str, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn hex_md5(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn stored(size: i64, last_modified: i64, identity: &str) -> StoredObject {
    StoredObject {
        size,
        last_modified,
        e_tag: hex_md5(identity.as_bytes()),
    }
}

/// The nightly versions kept, oldest first, ending the day before `NIGHTLY`.
fn nightly_dates() -> Vec<String> {
    let last = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date");
    (0..NIGHTLIES)
        .rev()
        .map(|days_before| {
            (last - chrono::Days::new(days_before as u64))
                .format("%Y.%m.%d")
                .to_string()
        })
        .collect()
}

/// The keys a publish of `version` writes: the packages in each pool, each suite's indexes,
/// by-hash copies and release files, and the source tarball with its signature.
fn published_keys(version: &Version, day: i64) -> Vec<(String, StoredObject)> {
    let mut keys = Vec::new();
    let package = version.package_name();
    for (os, distros) in SUITES {
        let pool = pool_directory(version, os);
        for distro in distros {
            for suffix in PACKAGES {
                for architecture in ARCHITECTURES {
                    let key = format!("{pool}/{package}{suffix}_{version}-1~{distro}_{architecture}.deb");
                    keys.push((key.clone(), stored(90_000_000, day, &key)));
                }
            }
            let suite = format!("{os}/dists/{distro}");
            for name in ["InRelease", "Release", "Release.gpg"] {
                let key = format!("{suite}/{name}");
                keys.push((key.clone(), stored(4_000, day, &format!("{key}@{version}"))));
            }
            for architecture in ARCHITECTURES {
                let index = format!("{suite}/main/binary-{architecture}");
                for name in ["Packages", "Packages.gz"] {
                    let key = format!("{index}/{name}");
                    let content = format!("{key}@{version}");
                    keys.push((key.clone(), stored(200_000, day, &content)));
                    let by_hash = format!(
                        "{index}/by-hash/SHA256/{}{}",
                        hex_md5(content.as_bytes()),
                        hex_md5(b"2")
                    );
                    keys.push((by_hash, stored(200_000, day, &content)));
                }
            }
        }
    }
    let source = public_source_key(version);
    for key in [source.clone(), format!("{source}.sig")] {
        keys.push((key.clone(), stored(80_000_000, day, &key)));
    }
    keys
}

/// The bucket before the nightly: exactly `TOTAL_KEYS` keys.
fn download_bucket() -> BTreeMap<String, StoredObject> {
    let mut bucket = BTreeMap::new();
    let base_day: i64 = 1_577_836_800; // 2020-01-01
    for release in 0..RELEASES {
        let version: Version = format!("4.{}.{}", release / 3, release % 3)
            .parse()
            .expect("a release version");
        for (key, object) in published_keys(&version, base_day + release as i64 * 86_400) {
            // Only what stays of a release: its packages and tarballs (the suites' files are
            // rewritten by every publish; by-hash below keeps the last few).
            if !key.contains("/dists/") {
                bucket.insert(key, object);
            }
        }
    }
    for (day, date) in nightly_dates().into_iter().enumerate() {
        let version: Version = date.parse().expect("a nightly version");
        for (key, object) in published_keys(&version, base_day + day as i64 * 86_400) {
            let kept_by_hash = !key.contains("/by-hash/") || day >= NIGHTLIES - BY_HASH_KEPT / 2;
            if kept_by_hash {
                bucket.insert(key, object);
            }
        }
    }
    let mut archived = 0;
    while bucket.len() < TOTAL_KEYS {
        let directory = archived / ARCHIVE_FILES_PER_DIRECTORY;
        let key = format!(
            "archive/{}/d{:03}/hhvm_3.{}.{}_amd64.deb",
            2014 + directory / 100,
            directory % 100,
            directory,
            archived % ARCHIVE_FILES_PER_DIRECTORY
        );
        bucket.insert(key.clone(), stored(50_000_000, base_day, &key));
        archived += 1;
    }
    bucket
}

/// The smallest string above every string that starts with `prefix` (which ends in `/`).
fn after_prefix(prefix: &str) -> String {
    format!("{}0", &prefix[..prefix.len() - 1])
}

/// ListObjectsV2 as S3 answers it: keys in order after the token, up to 1,000 entries per
/// page, common prefixes counted as entries when there is a delimiter.
fn list(bucket: &BTreeMap<String, StoredObject>, input: &ListObjectsV2Input) -> ListObjectsV2Output {
    let prefix = input.prefix().unwrap_or("");
    let delimiter = input.delimiter();
    let max_keys = input.max_keys().unwrap_or(1_000).clamp(1, 1_000) as usize;
    let start = match input.continuation_token().or(input.start_after()) {
        Some(token) => Bound::Excluded(token.to_string()),
        None => Bound::Included(prefix.to_string()),
    };
    let mut output = ListObjectsV2Output::builder().prefix(prefix).max_keys(max_keys as i32);
    let mut entries = 0;
    let mut last: Option<String> = None;
    let mut range = bucket.range::<String, _>((start, Bound::Unbounded));
    let mut truncated = false;
    while let Some((key, object)) = range.next() {
        if !key.starts_with(prefix) {
            break;
        }
        if entries == max_keys {
            truncated = true;
            break;
        }
        let rest = &key[prefix.len()..];
        match delimiter.and_then(|delimiter| rest.find(delimiter).map(|at| at + delimiter.len())) {
            Some(end) => {
                let common = format!("{prefix}{}", &rest[..end]);
                output = output.common_prefixes(CommonPrefix::builder().prefix(&common).build());
                // Skip the rest of that prefix; the token is the last key under it.
                let skip_to = after_prefix(&common);
                last = bucket
                    .range::<String, _>((Bound::Included(common.clone()), Bound::Excluded(skip_to.clone())))
                    .next_back()
                    .map(|(key, _)| key.clone());
                range = bucket.range::<String, _>((Bound::Included(skip_to), Bound::Unbounded));
            }
            None => {
                output = output.contents(
                    Object::builder()
                        .key(key)
                        .size(object.size)
                        .last_modified(DateTime::from_secs(object.last_modified))
                        .e_tag(format!("\"{}\"", object.e_tag))
                        .build(),
                );
                last = Some(key.clone());
            }
        }
        entries += 1;
    }
    if truncated {
        output = output.next_continuation_token(last.unwrap_or_default());
    }
    output.is_truncated(truncated).key_count(entries as i32).build()
}

fn put(bucket: &mut BTreeMap<String, StoredObject>, input: &PutObjectInput, now: i64) -> PutObjectOutput {
    let key = input.key().unwrap_or_default();
    // One writer at a time here: every conditional write's precondition must hold, or the
    // function's ETags are not what the bucket stores.
    match (input.if_match(), input.if_none_match(), bucket.get(key)) {
        (Some(expected), _, Some(stored)) => assert_eq!(expected.trim_matches('"'), stored.e_tag, "If-Match of {key}"),
        (Some(expected), _, None) => panic!("If-Match {expected} of {key}, which is not there"),
        (None, Some("*"), Some(_)) => panic!("If-None-Match of {key}, which is there"),
        _ => {}
    }
    let body = input.body().bytes().unwrap_or_default();
    let e_tag = hex_md5(body);
    let object = StoredObject {
        size: body.len() as i64,
        last_modified: now,
        e_tag: e_tag.clone(),
    };
    bucket.insert(key.to_string(), object);
    PutObjectOutput::builder().e_tag(format!("\"{e_tag}\"")).build()
}

fn s3_client(bucket: &Bucket, requests: &Requests) -> aws_sdk_s3::Client {
    let listing = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output({
        let (bucket, requests) = (bucket.clone(), requests.clone());
        move |input| {
            requests.add("ListObjectsV2");
            list(&bucket.lock().unwrap(), input)
        }
    });
    let writes = mock!(aws_sdk_s3::Client::put_object).then_compute_output({
        let (bucket, requests) = (bucket.clone(), requests.clone());
        move |input| {
            requests.add("PutObject");
            put(&mut bucket.lock().unwrap(), input, 1_796_169_600)
        }
    });
    // Any read of a page is counted, and fails: the function must decide without one.
    let reads = mock!(aws_sdk_s3::Client::get_object).then_error({
        let requests = requests.clone();
        move || {
            requests.add("GetObject");
            GetObjectError::NoSuchKey(NoSuchKey::builder().build())
        }
    });
    mocked_client!(
        aws_sdk_s3,
        pipeline_testing::mocks::match_any(&[&listing, &writes, &reads])
    )
}

/// One call of the handler: its `indexPages` summary, requests by kind and wall time.
struct Run {
    summary: Value,
    requests: BTreeMap<&'static str, u64>,
    seconds: f64,
}

impl Run {
    fn total(&self) -> u64 {
        self.requests.values().sum()
    }
    fn count(&self, kind: &str) -> u64 {
        self.requests.get(kind).copied().unwrap_or(0)
    }
    fn describe(&self, label: &str) {
        let kinds: Vec<String> = self
            .requests
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        println!(
            "{label:<38} {:>7} requests ({}), {:>6} pages written, {:>9} objects listed, {:.2} s",
            self.total(),
            kinds.join(", "),
            self.summary["pagesWritten"],
            self.summary["objectsListed"],
            self.seconds
        );
    }
    fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "total": self.total(),
            "pagesWritten": self.summary["pagesWritten"],
            "objectsListed": self.summary["objectsListed"],
            "seconds": self.seconds,
        })
    }
}

async fn run(bucket: &Bucket, payload: Value) -> Run {
    let requests = Requests::default();
    let s3 = s3_client(bucket, &requests);
    let cloudfront = mocked_client!(aws_sdk_cloudfront, pipeline_testing::mocks::match_any(&[]));
    let config = Config::default();
    let started = Instant::now();
    let output = create_s3_index_html::handle(&s3, &cloudfront, &config, payload)
        .await
        .expect("the index update succeeds");
    Run {
        summary: output["indexPages"].clone(),
        requests: requests.take(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[tokio::main]
async fn main() {
    let generated = Instant::now();
    let bucket: Bucket = Arc::new(Mutex::new(download_bucket()));
    let keys = bucket.lock().unwrap().len();
    println!(
        "bucket:                                {keys} keys, generated in {:.1} s",
        generated.elapsed().as_secs_f64()
    );
    let whole_bucket = json!({"bucket": BUCKET});

    let first = run(&bucket, whole_bucket.clone()).await;
    first.describe("first whole-bucket index");

    let nightly: Version = NIGHTLY.parse().expect("a nightly version");
    let added = published_keys(&nightly, 1_796_169_600);
    let changed_keys = added.len();
    bucket.lock().unwrap().extend(added);
    let untouched_copy: Bucket = Arc::new(Mutex::new(bucket.lock().unwrap().clone()));

    let update = run(&bucket, json!({"bucket": BUCKET, "version": NIGHTLY})).await;
    update.describe(&format!("update after nightly {NIGHTLY}"));
    let reindex = run(&untouched_copy, whole_bucket.clone()).await;
    reindex.describe("whole-bucket re-index after it");
    let after = run(&bucket, whole_bucket).await;
    after.describe("whole-bucket check after the update");

    assert_eq!(update.count("GetObject"), 0, "the update read a page back");
    assert_eq!(
        update.summary["pagesWritten"], reindex.summary["pagesWritten"],
        "the update and a whole re-index must write the same pages"
    );
    assert_eq!(after.count("PutObject"), 0, "the update left pages out of date");

    let share = |part: u64, whole: u64| 100.0 * part as f64 / whole as f64;
    let total_share = share(update.total(), reindex.total());
    let listing_share = share(update.count("ListObjectsV2"), reindex.count("ListObjectsV2"));
    println!("nightly keys written:                  {changed_keys}");
    println!("update / whole re-index, all requests: {total_share:.2} %");
    println!("update / whole re-index, listings:     {listing_share:.2} %");
    println!(
        "pool directories listed in full:       {:?}",
        REPOSITORY_OSES.map(|os| pool_directory(&nightly, os))
    );
    let result = json!({
        "keys": keys,
        "nightlyKeys": changed_keys,
        "firstIndex": first.to_json(),
        "update": update.to_json(),
        "reindex": reindex.to_json(),
        "check": after.to_json(),
        "percentOfReindex": total_share,
        "percentOfReindexListings": listing_share,
    });
    println!("RESULT {result}");
}
