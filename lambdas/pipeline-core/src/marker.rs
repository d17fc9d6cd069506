//! The success marker a worker writes last (`layout::marker_key`): what it built, which
//! instance built it, and the files with their SHA-256. Its presence is what makes a job count
//! as done, so every reader of it reads it here.

use serde::Deserialize;

use crate::InstanceId;

/// A success marker, as the workers write it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub distro: Option<String>,
    #[serde(default)]
    pub package_version: Option<String>,
    /// The worker instance that wrote it.
    #[serde(default)]
    pub instance: Option<String>,
    /// The execution that started that worker (empty for a hand invocation).
    #[serde(default)]
    pub execution_name: Option<String>,
    pub files: Vec<MarkerFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarkerFile {
    pub name: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Marker {
    /// Who wrote it, for messages: `i-… (execution …)`.
    pub fn writer(&self) -> String {
        let instance = self.instance.as_deref().unwrap_or("an unknown instance");
        match self.execution_name.as_deref().filter(|name| !name.is_empty()) {
            Some(execution) => format!("{instance} (execution {execution})"),
            None => instance.to_string(),
        }
    }

    /// Whether `instance` wrote it: a marker counts for a worker only if it is that worker's
    /// own, never one an earlier build left at the same key.
    pub fn written_by(&self, instance: &InstanceId) -> bool {
        self.instance.as_deref() == Some(instance.as_str())
    }
}

/// Reads a marker; the error says what is wrong with it.
pub fn parse_marker(bytes: &[u8]) -> Result<Marker, String> {
    serde_json::from_slice(bytes).map_err(|error| format!("the success marker is not valid: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_written_by_the_instance_it_names_only() {
        let marker = parse_marker(
            br#"{"instance": "i-0123456789abcdef0", "executionName": "nightly", "files": [], "extra": 1}"#,
        )
        .unwrap();
        assert!(marker.written_by(&"i-0123456789abcdef0".parse().unwrap()));
        assert!(!marker.written_by(&"i-00000001".parse().unwrap()));
        assert_eq!(marker.writer(), "i-0123456789abcdef0 (execution nightly)");

        let anonymous = parse_marker(br#"{"files": []}"#).unwrap();
        assert!(!anonymous.written_by(&"i-00000001".parse().unwrap()));
        assert_eq!(anonymous.writer(), "an unknown instance");
    }

    #[test]
    fn a_marker_without_its_files_is_not_valid() {
        let error = parse_marker(br#"{"instance": "i-00000001"}"#).unwrap_err();
        assert!(error.starts_with("the success marker is not valid"), "{error}");
        assert!(parse_marker(b"not json").is_err());
    }
}
