//! User data for the EC2 workers: a prelude of shell variable assignments followed by a script
//! embedded at build time.
//!
//! The original pipeline spliced payload strings unquoted into bash (`VERSION=<raw>`), so a `;`
//! or `$(...)` in an execution's input ran on the instance. Here every value is checked twice:
//! it must match the strict pattern of its kind (a version, a distro, a bucket name, …), and it
//! is single-quoted, the one shell quoting form in which no character is special.

use std::fmt;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::launch::WorkerRequest;
use crate::s3::Buckets;
use crate::{BucketName, Distro, ObjectKey, PackagingBranch, PipelineError, Version};

/// Quotes `value` as one POSIX shell word that expands to exactly `value`.
///
/// Inside single quotes nothing is special except the closing quote, so a `'` is written as
/// `'\''` (close, an escaped quote, reopen). NUL cannot be held by a shell variable at all;
/// the prelude's patterns refuse it long before it gets here.
pub fn shell_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// A value allowed into a prelude, each kind with its own strict pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreludeValue {
    Version(Version),
    Distro(Distro),
    /// Several distros, written space-separated (the script splits them).
    Distros(Vec<Distro>),
    Branch(PackagingBranch),
    Bucket(BucketName),
    Key(ObjectKey),
    Flag(bool),
    /// A configuration value forwarded to the worker (a secret's name, a repository URL, a
    /// region): `^[A-Za-z0-9][A-Za-z0-9_.,:/@+=-]*$`, at most 512 characters.
    Setting(String),
}

impl PreludeValue {
    /// The text the shell variable will hold, once its pattern is checked.
    fn text(&self) -> Result<String, String> {
        match self {
            PreludeValue::Version(version) => Ok(version.to_string()),
            PreludeValue::Distro(distro) => Ok(distro.to_string()),
            PreludeValue::Distros(distros) => Ok(distros.iter().map(Distro::as_str).collect::<Vec<_>>().join(" ")),
            PreludeValue::Branch(branch) => Ok(branch.to_string()),
            PreludeValue::Bucket(bucket) => Ok(bucket.to_string()),
            PreludeValue::Key(key) => check_object_key(key.as_str()).map(str::to_string),
            PreludeValue::Flag(flag) => Ok(flag.to_string()),
            PreludeValue::Setting(setting) => check_setting(setting).map(str::to_string),
        }
    }
}

/// S3 keys handed to a worker use only AWS's "safe" key characters (letters, digits, `/ ! - _
/// . * ( )`) minus `!*()`, which no key of this pipeline needs.
fn check_object_key(key: &str) -> Result<&str, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"/-_.+=".contains(&b);
    let starts_well = key.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric);
    if starts_well && key.bytes().all(allowed) {
        Ok(key)
    } else {
        Err(format!(
            "{key:?} is not a key a worker accepts (letters, digits and / - _ . + =, starting with a letter or digit)"
        ))
    }
}

pub(crate) fn check_setting(setting: &str) -> Result<&str, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_.,:/@+=-".contains(&b);
    let starts_well = setting.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric);
    if starts_well && setting.len() <= 512 && setting.bytes().all(allowed) {
        Ok(setting)
    } else {
        Err(format!(
            "{setting:?} is not a worker setting (up to 512 letters, digits and _ . , : / @ + = -, starting with a letter or digit)"
        ))
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The ordered variable assignments that precede a worker script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prelude {
    assignments: Vec<(String, String)>,
}

impl Prelude {
    pub fn new() -> Prelude {
        Prelude::default()
    }

    /// Adds `NAME=value`. `field` is the payload field (or configuration variable) the value
    /// came from: a value that fails its pattern is `InvalidInput` naming it.
    pub fn set(&mut self, name: &str, field: &str, value: PreludeValue) -> Result<&mut Prelude, PipelineError> {
        if !is_variable_name(name) {
            // Names are constants of this code base, never input.
            return Err(PipelineError::invalid_input(
                field,
                format!("{name:?} is not a shell variable name"),
            ));
        }
        let text = value
            .text()
            .map_err(|problem| PipelineError::invalid_input(field, problem))?;
        self.assignments.retain(|(existing, _)| existing != name);
        self.assignments.push((name.to_string(), text));
        Ok(self)
    }

    /// The assignments in order, unquoted (what the script will see).
    pub fn assignments(&self) -> &[(String, String)] {
        &self.assignments
    }

    /// The complete user data: a bash shebang, one `export NAME='value'` line per assignment,
    /// then `script` without its own shebang line.
    pub fn render(&self, script: &str) -> String {
        let body = match script.strip_prefix("#!") {
            Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body),
            None => script,
        };
        let mut user_data = String::from("#!/bin/bash\n# Values set by the launching function.\n");
        for (name, value) in &self.assignments {
            user_data.push_str(&format!("export {name}={}\n", shell_quote(value)));
        }
        user_data.push_str(body);
        user_data
    }
}

impl fmt::Display for Prelude {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(""))
    }
}

/// The largest user data EC2 accepts, before base64 encoding.
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;

/// User data as EC2 receives it: gzip, which cloud-init unpacks before it runs the script, so
/// EC2's limit applies to the compressed bytes (the scripts are about a third of it).
pub fn compressed_user_data(user_data: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    // Writing into a Vec cannot fail.
    encoder.write_all(user_data.as_bytes()).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// The user data of a worker: the prelude, then the shared function library, then the job's
/// script (both embedded at build time; their shebang lines dropped). Too large for EC2 once
/// compressed is an error here rather than a rejected launch.
pub fn worker_user_data(prelude: &Prelude, library: &str, script: &str) -> Result<String, PipelineError> {
    let without_shebang = |text: &str| match text.strip_prefix("#!") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body).to_string(),
        None => text.to_string(),
    };
    let user_data = prelude.render(&format!("{}\n{}", without_shebang(library), without_shebang(script)));
    let compressed = compressed_user_data(&user_data).len();
    if compressed > MAX_USER_DATA_BYTES {
        return Err(PipelineError::invalid_input(
            "(user data)",
            format!("{compressed} bytes compressed is more than EC2's {MAX_USER_DATA_BYTES}"),
        ));
    }
    Ok(user_data)
}

/// The assignments every worker gets: the version, whether it is a nightly, the execution that
/// asked for the worker (when there is one; its success marker names it), the two buckets, and
/// the configured worker settings.
pub fn base_prelude(
    worker: &WorkerRequest,
    buckets: &Buckets,
    worker_settings: &[(String, String)],
) -> Result<Prelude, PipelineError> {
    let version = worker.version;
    let mut prelude = Prelude::new();
    prelude.set("VERSION", "version", PreludeValue::Version(version))?.set(
        "IS_NIGHTLY",
        "version",
        PreludeValue::Flag(version.is_nightly()),
    )?;
    if let Some(execution) = &worker.execution {
        prelude.set(
            "EXECUTION_NAME",
            "executionName",
            PreludeValue::Setting(execution.as_str().to_string()),
        )?;
    }
    prelude
        .set(
            "SCRATCH_BUCKET",
            "SCRATCH_BUCKET",
            PreludeValue::Bucket(buckets.scratch.clone()),
        )?
        .set(
            "DOWNLOADS_BUCKET",
            "DOWNLOADS_BUCKET",
            PreludeValue::Bucket(buckets.downloads.clone()),
        )?;
    for (name, value) in worker_settings {
        prelude.set(name, name, PreludeValue::Setting(value.clone()))?;
    }
    Ok(prelude)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Reads one shell word made only of single-quoted runs and `\'` escapes, the form
    /// `shell_quote` promises; `None` if any character stands outside quotes.
    fn parse_quoted_word(word: &str) -> Option<String> {
        let mut value = String::new();
        let mut chars = word.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => loop {
                    match chars.next()? {
                        '\'' => break,
                        inner => value.push(inner),
                    }
                },
                '\\' => match chars.next()? {
                    '\'' => value.push('\''),
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some(value)
    }

    fn bash_expands(assignment: &str) -> String {
        let script = format!("{assignment}\nprintf %s \"$X\"");
        let output = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("run bash");
        assert!(output.status.success(), "bash failed on {assignment:?}");
        String::from_utf8(output.stdout).expect("bash printed UTF-8")
    }

    fn release() -> Version {
        "4.168.2".parse().unwrap()
    }

    #[test]
    fn quoting_hostile_strings_keeps_them_literal() {
        for hostile in [
            "a'b",
            "$(id)",
            "`id`",
            "x; rm -rf /",
            "'",
            "''",
            "\\",
            "a\nb",
            "$HOME",
            "!!",
            "*",
            "",
        ] {
            let quoted = shell_quote(hostile);
            assert_eq!(parse_quoted_word(&quoted).as_deref(), Some(hostile), "{quoted}");
            assert_eq!(bash_expands(&format!("X={quoted}")), hostile);
        }
    }

    #[test]
    fn prelude_renders_exported_quoted_assignments_before_the_script() {
        let mut prelude = Prelude::new();
        prelude
            .set("VERSION", "version", PreludeValue::Version(release()))
            .unwrap();
        prelude.set("IS_NIGHTLY", "nightly", PreludeValue::Flag(false)).unwrap();
        prelude
            .set(
                "DISTRO",
                "distros[0]",
                PreludeValue::Distro("ubuntu-24.04-noble".parse().unwrap()),
            )
            .unwrap();
        prelude
            .set(
                "PACKAGING_BRANCH",
                "packagingBranch",
                PreludeValue::Branch("HHVM-4.168".parse().unwrap()),
            )
            .unwrap();
        prelude
            .set(
                "SOURCE_KEY",
                "source.path",
                PreludeValue::Key("hhvm-4.168.2.tar.gz".parse().unwrap()),
            )
            .unwrap();
        let user_data = prelude.render("#!/usr/bin/env bash\nset -euo pipefail\necho \"$VERSION\"\n");
        assert_eq!(
            user_data,
            "#!/bin/bash\n# Values set by the launching function.\n\
             export VERSION='4.168.2'\nexport IS_NIGHTLY='false'\nexport DISTRO='ubuntu-24.04-noble'\n\
             export PACKAGING_BRANCH='HHVM-4.168'\nexport SOURCE_KEY='hhvm-4.168.2.tar.gz'\n\
             set -euo pipefail\necho \"$VERSION\"\n"
        );
    }

    #[test]
    fn setting_a_variable_twice_keeps_the_last_value_once() {
        let mut prelude = Prelude::new();
        prelude
            .set("AWS_REGION", "AWS_REGION", PreludeValue::Setting("us-west-2".into()))
            .unwrap();
        prelude
            .set("AWS_REGION", "AWS_REGION", PreludeValue::Setting("eu-west-1".into()))
            .unwrap();
        assert_eq!(
            prelude.assignments(),
            [("AWS_REGION".to_string(), "eu-west-1".to_string())]
        );
    }

    #[test]
    fn distro_lists_are_space_separated() {
        let distros = vec![
            "debian-12-bookworm".parse().unwrap(),
            "ubuntu-24.04-noble".parse().unwrap(),
        ];
        let mut prelude = Prelude::new();
        prelude
            .set("DISTROS", "distros", PreludeValue::Distros(distros))
            .unwrap();
        assert!(
            prelude
                .render("")
                .contains("export DISTROS='debian-12-bookworm ubuntu-24.04-noble'\n")
        );
    }

    #[test]
    fn hostile_keys_and_settings_are_invalid_input_naming_the_field() {
        for key in ["a b.tar.gz", "x;id", "$(id)", "a'b", "-rf", "a`b`", "a\"b", "k\\x"] {
            let key: ObjectKey = key.parse().unwrap();
            let error = Prelude::new()
                .set("SOURCE_KEY", "source.path", PreludeValue::Key(key))
                .unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput");
            assert!(error.to_string().contains("`source.path`"), "{error}");
        }
        for setting in ["", "a b", "x;id", "$(id)", "a'b", "-x", "a\nb", &"a".repeat(513)] {
            let error = Prelude::new()
                .set(
                    "SIGNING_KEY_SECRET_ID",
                    "SIGNING_KEY_SECRET_ID",
                    PreludeValue::Setting(setting.into()),
                )
                .unwrap_err();
            assert!(error.to_string().contains("SIGNING_KEY_SECRET_ID"), "{error}");
        }
        let good = [
            "hhvm/package-signing-key",
            "https://github.com/hhvm/packaging",
            "git@github.com:hhvm/hhvm-staging.git",
        ];
        for setting in good {
            assert!(
                Prelude::new()
                    .set("X", "X", PreludeValue::Setting(setting.into()))
                    .is_ok(),
                "{setting}"
            );
        }
    }

    #[test]
    fn variable_names_are_checked() {
        for name in ["", "lower", "1X", "A-B", "A B", "X;id"] {
            assert!(
                Prelude::new().set(name, "f", PreludeValue::Flag(true)).is_err(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn a_script_without_shebang_is_kept_whole() {
        assert_eq!(
            Prelude::new().render("echo hi\n"),
            "#!/bin/bash\n# Values set by the launching function.\necho hi\n"
        );
    }

    /// Strings mixing the setting alphabet with the characters that matter to a shell.
    fn setting_like() -> impl Strategy<Value = String> {
        let alphabet = vec![
            'a', 'Z', '0', '/', '-', ':', '@', '.', ' ', '\'', '$', '(', ';', '\n', '"', '\\', '`', '*',
        ];
        proptest::collection::vec(proptest::sample::select(alphabet), 0..24)
            .prop_map(|chars| chars.into_iter().collect())
    }

    #[test]
    fn worker_user_data_joins_prelude_library_and_script() {
        let buckets = Buckets {
            downloads: "hhvm-downloads".parse().unwrap(),
            scratch: "hhvm-scratch".parse().unwrap(),
        };
        let settings = [("AWS_REGION".to_string(), "us-west-2".to_string())];
        let worker = WorkerRequest {
            version: "2026.11.21".parse().unwrap(),
            packaging_branch: PackagingBranch::Master,
            execution: Some("nightly-2026-11-21".parse().unwrap()),
        };
        let prelude = base_prelude(&worker, &buckets, &settings).unwrap();
        let user_data = worker_user_data(
            &prelude,
            "# shellcheck shell=bash\nlib() { :; }\n",
            "#!/bin/bash\nlib\n",
        )
        .unwrap();
        assert_eq!(
            user_data,
            "#!/bin/bash\n# Values set by the launching function.\nexport VERSION='2026.11.21'\n\
             export IS_NIGHTLY='true'\nexport EXECUTION_NAME='nightly-2026-11-21'\nexport SCRATCH_BUCKET='hhvm-scratch'\nexport DOWNLOADS_BUCKET='hhvm-downloads'\n\
             export AWS_REGION='us-west-2'\n# shellcheck shell=bash\nlib() { :; }\n\nlib\n"
        );
        // Repetitive text compresses far below the limit; text that does not compress does not.
        assert!(worker_user_data(&prelude, "", &"echo ok\n".repeat(4 * MAX_USER_DATA_BYTES)).is_ok());
        let mut state = 0x2545_f491_u32;
        let incompressible: String = (0..2 * MAX_USER_DATA_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                char::from(b'!' + (state % 94) as u8)
            })
            .collect();
        let error = worker_user_data(&prelude, "", &incompressible).unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("compressed"), "{error}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_string_escapes_its_quotes(value in any::<String>()) {
            let quoted = shell_quote(&value);
            prop_assert_eq!(parse_quoted_word(&quoted), Some(value.clone()));
            // bash cannot hold NUL in a variable; everything else must round-trip exactly.
            if !value.contains('\0') {
                prop_assert_eq!(bash_expands(&format!("X={quoted}")), value);
            }
        }

        #[test]
        fn setting_values_either_pass_their_pattern_or_are_refused(value in setting_like()) {
            let mut prelude = Prelude::new();
            match prelude.set("X", "X", PreludeValue::Setting(value.clone())) {
                Ok(_) => {
                    prop_assert!(check_setting(&value).is_ok());
                    let rendered = prelude.render("");
                    let line = rendered.lines().nth(2).unwrap_or_default();
                    let word = line.strip_prefix("export X=").unwrap_or_default();
                    prop_assert_eq!(parse_quoted_word(word), Some(value));
                }
                Err(error) => prop_assert_eq!(error.error_type(), "InvalidInput"),
            }
        }
    }
}
