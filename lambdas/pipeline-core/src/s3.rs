//! Where things live in S3, and the validated names that get there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{PipelineError, Version};

/// An S3 bucket name that follows AWS's naming rules (3–63 characters of `a-z 0-9 . -`,
/// starting and ending with a letter or digit, no `..`). Such a name is also safe in a shell
/// word, a URL path and a tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BucketName(String);

impl BucketName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BucketName {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
        let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let bytes = value.as_bytes();
        if !(3..=63).contains(&bytes.len())
            || !bytes.iter().all(|&b| allowed(b))
            || !edge(bytes.first())
            || !edge(bytes.last())
            || value.contains("..")
        {
            return Err(format!(
                "{value:?} is not a valid S3 bucket name (3-63 characters of a-z, 0-9, '.', '-', \
                 starting and ending with a letter or digit)"
            ));
        }
        Ok(BucketName(value.to_string()))
    }
}

impl<'de> Deserialize<'de> for BucketName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An S3 object key: 1–1024 bytes, no control characters, no leading `/` (which would name a
/// different object than the one meant), no `.`/`..` path segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ObjectKey {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.is_empty() || value.len() > 1024 {
            return Err(format!(
                "an S3 key must be 1-1024 bytes long, got {} bytes",
                value.len()
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!("{value:?} contains control characters"));
        }
        if value.starts_with('/') {
            return Err(format!("{value:?} starts with '/'; S3 keys are written without it"));
        }
        if value.split('/').any(|segment| segment == "." || segment == "..") {
            return Err(format!("{value:?} contains a '.' or '..' path segment"));
        }
        Ok(ObjectKey(value.to_string()))
    }
}

impl<'de> Deserialize<'de> for ObjectKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bucket and key. Serialized as `{"bucket": …, "path": …}`: the payload field names of the
/// original pipeline, which operators and state machines already use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct S3Location {
    pub bucket: BucketName,
    pub path: ObjectKey,
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.path)
    }
}

/// The two buckets of the pipeline: the public download bucket (served by the CDN) and the
/// private scratch bucket where builds stage their artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    pub downloads: BucketName,
    pub scratch: BucketName,
}

impl Buckets {
    /// The one reader of `source`: where the version's tarball belongs. A `source` in the
    /// payload (as get-build-version outputs it) must be an object naming exactly that place:
    /// workers write the tarball and its signature there, so no input may point them at another
    /// key (a published release's tarball) or another bucket.
    pub fn read_source(&self, payload: &crate::Payload, version: &Version) -> Result<S3Location, crate::PipelineError> {
        let expected = self.source_tarball(version);
        let given = match payload.get("source") {
            None | Some(serde_json::Value::Null) => return Ok(expected),
            Some(serde_json::Value::Object(_)) => {
                payload.required::<S3Location>("source", "an object {\"bucket\": ..., \"path\": ...}")?
            }
            Some(other) => {
                return Err(crate::PipelineError::invalid_input(
                    "source",
                    format!(
                        "expected an object {{\"bucket\": ..., \"path\": ...}}, got {}",
                        crate::payload::json_type(other)
                    ),
                ));
            }
        };
        if given != expected {
            return Err(crate::PipelineError::invalid_input(
                "source",
                format!("is {given}, but the tarball of {version} belongs at {expected}"),
            ));
        }
        Ok(expected)
    }

    /// Where the source tarball of `version` is expected. Nightlies are published straight to
    /// the download bucket; release tarballs wait in scratch until their release is published.
    pub fn source_tarball(&self, version: &Version) -> S3Location {
        let (bucket, path) = match version {
            // A nightly's source is published when it is built.
            Version::Nightly(_) => (self.downloads.clone(), crate::layout::public_source_key(version)),
            Version::Release { .. } => (self.scratch.clone(), format!("hhvm-{version}.tar.gz")),
        };
        // A version prints only digits and dots, so the key is always valid.
        S3Location {
            bucket,
            path: ObjectKey(path),
        }
    }
}

/// Parses a configuration or payload value into a bucket name, blaming `field` on failure.
pub fn parse_bucket(field: &str, value: &str) -> Result<BucketName, PipelineError> {
    value
        .parse()
        .map_err(|problem| PipelineError::invalid_input(field, problem))
}

#[cfg(test)]
mod source_tests {
    use serde_json::json;

    use super::*;
    use crate::Payload;

    fn buckets() -> Buckets {
        Buckets {
            downloads: "hhvm-downloads".parse().unwrap(),
            scratch: "hhvm-scratch".parse().unwrap(),
        }
    }

    #[test]
    fn source_is_the_versions_own_place_or_refused() {
        let release: Version = "4.168.2".parse().unwrap();
        let expected = buckets().source_tarball(&release);
        for ok in [json!({}), json!({"source": null}), json!({"source": expected})] {
            let payload = Payload::from_value(ok.clone()).unwrap();
            assert_eq!(buckets().read_source(&payload, &release).unwrap(), expected, "{ok}");
        }
        for bad in [
            json!({"source": {"bucket": "someone-elses-bucket", "path": "hhvm-4.168.2.tar.gz"}}),
            json!({"source": {"bucket": "hhvm-scratch", "path": "hhvm-4.168.1.tar.gz"}}),
            json!({"source": {"bucket": "hhvm-downloads", "path": "source/hhvm-4.168.2.tar.gz"}}),
            json!({"source": ["hhvm-scratch", "hhvm-4.168.2.tar.gz"]}),
            json!({"source": "s3://hhvm-scratch/hhvm-4.168.2.tar.gz"}),
        ] {
            let payload = Payload::from_value(bad.clone()).unwrap();
            let error = buckets().read_source(&payload, &release).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput", "{bad}");
            assert!(error.to_string().contains("`source`"), "{bad}: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets() -> Buckets {
        Buckets {
            downloads: "hhvm-downloads".parse().unwrap(),
            scratch: "hhvm-scratch".parse().unwrap(),
        }
    }

    #[test]
    fn nightly_tarball_is_public_release_tarball_is_scratch() {
        let nightly = buckets().source_tarball(&"2026.11.21".parse().unwrap());
        assert_eq!(
            nightly.to_string(),
            "s3://hhvm-downloads/source/nightlies/hhvm-nightly-2026.11.21.tar.gz"
        );
        let release = buckets().source_tarball(&"4.168.2".parse().unwrap());
        assert_eq!(release.to_string(), "s3://hhvm-scratch/hhvm-4.168.2.tar.gz");
    }

    #[test]
    fn location_serializes_with_the_original_field_names() {
        let location = buckets().source_tarball(&"4.168.2".parse().unwrap());
        assert_eq!(
            serde_json::to_value(&location).unwrap(),
            serde_json::json!({"bucket": "hhvm-scratch", "path": "hhvm-4.168.2.tar.gz"})
        );
    }

    #[test]
    fn bucket_names_follow_aws_rules() {
        for good in ["abc", "hhvm-downloads", "a.b-c1", "0-bucket"] {
            assert!(good.parse::<BucketName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "ab",
            "Upper",
            "-lead",
            "trail-",
            "a..b",
            "a_b",
            "a b",
            "a;b",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<BucketName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn object_keys_refuse_what_would_name_another_object() {
        assert!("source/hhvm-4.1.2.tar.gz".parse::<ObjectKey>().is_ok());
        assert!("dir with space/and-ünïcode".parse::<ObjectKey>().is_ok());
        for bad in ["", "/abs", "a/../b", "./a", "a\nb", "a\u{7f}b", &"k".repeat(1025)] {
            assert!(bad.parse::<ObjectKey>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserializing_validates() {
        let bad = serde_json::from_value::<S3Location>(serde_json::json!({"bucket": "Bad_Bucket", "path": "k"}));
        assert!(bad.unwrap_err().to_string().contains("not a valid S3 bucket name"));
    }
}
