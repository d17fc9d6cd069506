//! What an apt client checks, done on what is published: a suite's `InRelease` verifies with
//! the repository's public key, the index files it lists are there with the sizes and SHA-256
//! it states (at their by-hash names when the suite says `Acquire-By-Hash: yes`, which is what
//! clients then fetch, and which another publisher's upload can never change under the name),
//! and its `Packages` indices list each package. Pure: the caller fetches the bytes.

use std::io::Read;

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use sha2::{Digest, Sha256};

/// One index file a `Release` lists in its `SHA256` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    /// Relative to the suite's directory: `main/binary-amd64/Packages`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl IndexFile {
    /// Where a client that uses by-hash fetches it, relative to the suite's directory.
    pub fn by_hash_path(&self) -> String {
        let directory = self.path.rsplit_once('/').map_or("", |(directory, _)| directory);
        if directory.is_empty() {
            format!("by-hash/SHA256/{}", self.sha256)
        } else {
            format!("{directory}/by-hash/SHA256/{}", self.sha256)
        }
    }

    /// Whether these bytes are the file the `Release` states.
    pub fn check(&self, bytes: &[u8]) -> Result<(), String> {
        let digest = sha256_hex(bytes);
        if bytes.len() as u64 != self.size || digest != self.sha256 {
            return Err(format!(
                "{} is {} bytes with sha256 {digest}; the Release states {} bytes with sha256 {}",
                self.path,
                bytes.len(),
                self.size,
                self.sha256
            ));
        }
        Ok(())
    }

    /// A `Packages` index, plain or gzip-compressed (the ones a package lookup reads).
    pub fn is_packages_index(&self) -> bool {
        let name = self.path.rsplit('/').next().unwrap_or_default();
        name == "Packages" || name == "Packages.gz"
    }
}

/// The fields of a `Release` the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub acquire_by_hash: bool,
    pub files: Vec<IndexFile>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The text an `InRelease` signs, if one of its signatures verifies with one of the keys (or
/// their subkeys) in the ASCII-armored `keyring`: what `apt-get update` accepts.
pub fn verified_release(in_release: &str, keyring: &str) -> Result<String, String> {
    let (keys, _) = SignedPublicKey::from_armor_many(keyring.as_bytes())
        .map_err(|error| format!("the public key file is not an armored OpenPGP key: {error}"))?;
    let keys: Vec<SignedPublicKey> = keys
        .collect::<Result<_, _>>()
        .map_err(|error| format!("the public key file holds a key that cannot be read: {error}"))?;
    let (message, _) = CleartextSignedMessage::from_string(in_release)
        .map_err(|error| format!("InRelease is not a clear-signed message: {error}"))?;
    let verifies = keys.iter().any(|key| {
        message.verify(key).is_ok() || key.public_subkeys.iter().any(|subkey| message.verify(subkey).is_ok())
    });
    if !verifies {
        return Err(format!(
            "InRelease does not verify with the public key ({} key(s) in the file)",
            keys.len()
        ));
    }
    Ok(message.signed_text().replace("\r\n", "\n"))
}

/// Reads a `Release` (or the text an `InRelease` signs).
pub fn parse_release(text: &str) -> Result<Release, String> {
    let mut acquire_by_hash = false;
    let mut files = Vec::new();
    let mut in_sha256 = false;
    for line in text.lines() {
        if let Some(entry) = line.strip_prefix(' ') {
            if !in_sha256 {
                continue;
            }
            let fields: Vec<&str> = entry.split_whitespace().collect();
            let [sha256, size, path] = fields[..] else {
                return Err(format!(
                    "the Release's SHA256 line {line:?} is not \"sha256 size path\""
                ));
            };
            let size = size
                .parse()
                .map_err(|_| format!("the Release's SHA256 line {line:?} has no size"))?;
            let well_formed = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
            let plain_path = !path.starts_with('/') && !path.split('/').any(|part| part.is_empty() || part == "..");
            if !well_formed || !plain_path {
                return Err(format!(
                    "the Release's SHA256 line {line:?} is not a checksum and a relative path"
                ));
            }
            files.push(IndexFile {
                path: path.to_string(),
                size,
                sha256: sha256.to_ascii_lowercase(),
            });
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        in_sha256 = field == "SHA256";
        if field == "Acquire-By-Hash" {
            acquire_by_hash = value.trim().eq_ignore_ascii_case("yes");
        }
    }
    if files.is_empty() {
        return Err("the Release lists no files with SHA256".into());
    }
    Ok(Release { acquire_by_hash, files })
}

/// The text of a `Packages` index from its bytes (gunzipped for `Packages.gz`).
pub fn packages_text(file: &IndexFile, bytes: &[u8]) -> Result<String, String> {
    let mut text = String::new();
    let read = if file.path.ends_with(".gz") {
        flate2::read::GzDecoder::new(bytes).read_to_string(&mut text)
    } else {
        bytes.as_ref().read_to_string(&mut text)
    };
    read.map_err(|error| format!("{} cannot be read: {error}", file.path))?;
    Ok(text)
}

/// `(Filename, SHA256)` of every stanza of a `Packages` index.
pub fn listed_packages(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza.lines().find_map(|line| {
                    line.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .map(|value| value.trim().to_string())
                })
            };
            Some((field("Filename")?, field("SHA256")?.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "Origin: HHVM\nSuite: bookworm\nAcquire-By-Hash: yes\nMD5Sum:\n \
        0123 10 main/binary-amd64/Packages\nSHA256:\n \
        e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages\n \
        2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae 3 main/binary-amd64/Packages.gz\n";

    #[test]
    fn release_files_are_read_from_the_sha256_section_only() {
        let release = parse_release(RELEASE).unwrap();
        assert!(release.acquire_by_hash);
        assert_eq!(
            release
                .files
                .iter()
                .map(|f| (f.path.as_str(), f.size))
                .collect::<Vec<_>>(),
            [("main/binary-amd64/Packages", 0), ("main/binary-amd64/Packages.gz", 3)]
        );
        assert_eq!(
            release.files[1].by_hash_path(),
            "main/binary-amd64/by-hash/SHA256/2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
        assert!(release.files.iter().all(IndexFile::is_packages_index));
        assert!(release.files[1].check(b"foo").is_ok());
        let wrong = release.files[1].check(b"bar").unwrap_err();
        assert!(wrong.contains("the Release states 3 bytes"), "{wrong}");
    }

    #[test]
    fn a_release_that_lists_nothing_or_escapes_its_directory_is_refused() {
        assert!(parse_release("Origin: HHVM\n").is_err());
        let escaping = format!("SHA256:\n {} 1 ../../conf/x\n", "a".repeat(64));
        assert!(parse_release(&escaping).unwrap_err().contains("relative path"));
        assert!(parse_release("SHA256:\n abc 1 main/Packages\n").is_err());
    }

    #[test]
    fn packages_stanzas_give_their_file_and_checksum() {
        let text = "Package: hhvm\nFilename: pool/main/h/hhvm/hhvm_1_amd64.deb\nSHA256: ABC\n\n\
                    Package: hhvm-dev\nFilename: pool/main/h/hhvm/hhvm-dev_1_amd64.deb\nSHA256: def\n";
        assert_eq!(
            listed_packages(text),
            [
                ("pool/main/h/hhvm/hhvm_1_amd64.deb".to_string(), "abc".to_string()),
                ("pool/main/h/hhvm/hhvm-dev_1_amd64.deb".to_string(), "def".to_string())
            ]
        );
        let gz = IndexFile {
            path: "main/binary-amd64/Packages.gz".into(),
            size: 0,
            sha256: String::new(),
        };
        let mut compressed = Vec::new();
        {
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(&mut compressed, flate2::Compression::default());
            encoder.write_all(text.as_bytes()).unwrap();
            encoder.finish().unwrap();
        }
        assert_eq!(packages_text(&gz, &compressed).unwrap(), text);
    }

    #[test]
    fn an_unsigned_or_garbled_in_release_does_not_verify() {
        assert!(verified_release("Origin: HHVM\n", "not a key").is_err());
    }
}
