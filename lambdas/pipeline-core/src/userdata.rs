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

use crate::executions::ExecutionName;
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
    /// The execution the worker works for (any name Step Functions accepts; single-quoted like
    /// every value).
    Execution(ExecutionName),
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
            PreludeValue::Execution(execution) => Ok(execution.to_string()),
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
/// script (both embedded at build time; their shebang lines dropped, and their comment and
/// blank lines: `without_comment_lines`). Too large for EC2 once compressed is an error here
/// rather than a rejected launch.
pub fn worker_user_data(prelude: &Prelude, library: &str, script: &str) -> Result<String, PipelineError> {
    let without_shebang = |text: &str| match text.strip_prefix("#!") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body).to_string(),
        None => text.to_string(),
    };
    let scripts = format!("{}\n{}", without_shebang(library), without_shebang(script));
    let user_data = prelude.render(&without_comment_lines(&scripts));
    let compressed = compressed_user_data(&user_data).len();
    if compressed > MAX_USER_DATA_BYTES {
        return Err(PipelineError::invalid_input(
            "(user data)",
            format!("{compressed} bytes compressed is more than EC2's {MAX_USER_DATA_BYTES}"),
        ));
    }
    Ok(user_data)
}

/// `script` without the lines its interpreters skip (`line_roles` says which): a fifth to a
/// quarter of the scripts' bytes, which would otherwise count against EC2's limit. The prelude
/// is not passed through here: it holds values, not comments.
fn without_comment_lines(script: &str) -> String {
    line_roles(script)
        .into_iter()
        .filter(|(role, _)| !matches!(role, LineRole::ShellComment | LineRole::PythonComment))
        .map(|(_, line)| line)
        .collect()
}

/// What a line of a worker script is to the program that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineRole {
    /// Read by bash (a heredoc's terminator included).
    Shell,
    /// A blank line, or one whose first non-blank character is `#`, that bash skips: not in a
    /// heredoc, and not continuing the line before (after a `\` it would end that command).
    ShellComment,
    /// A line of a heredoc's body: data, kept byte for byte.
    Heredoc,
    /// A line of a Python heredoc's body that Python reads.
    Python,
    /// A blank or comment-only line of a Python heredoc's body that the Python tokenizer skips:
    /// outside any string, not continuing the line before, and not one of the program's first
    /// two lines (where a shebang or an encoding declaration may stand).
    PythonComment,
}

/// The role of each line of `script` (each line with its newline).
///
/// Heredocs are followed as bash reads them: every `<<WORD`, `<<'WORD'`, `<<"WORD"` or
/// `<<-WORD` on a line bash reads (but not the here-string `<<<`) has its body start on the
/// next line that does not continue a command, after the bodies of those before it, and end at
/// the line that is exactly its delimiter (after leading tabs, for `<<-`). A `<<` that is no
/// heredoc (in a string, in arithmetic) only keeps more lines than needed.
///
/// A quoted heredoc whose delimiter is `PY` or ends in `_PY` holds a Python program (the
/// convention of `userdata/`), whose comment lines are dropped too.
///
/// What this does not follow is a quoted string spanning lines: a line of one that looks like
/// a comment would be dropped. The scripts have none; their tests compare what bash parses
/// with and without the dropped lines.
fn line_roles(script: &str) -> Vec<(LineRole, &str)> {
    let mut roles = Vec::new();
    let mut pending = std::collections::VecDeque::new();
    let mut body: Option<HeredocBody> = None;
    let mut continued = false;
    for line in script.split_inclusive('\n') {
        let text = line.strip_suffix('\n').unwrap_or(line);
        if let Some(heredoc) = body.as_mut() {
            if heredoc.ends_at(text) {
                roles.push((LineRole::Shell, line));
                body = pending.pop_front().map(HeredocBody::new);
            } else {
                roles.push((heredoc.role_of(text), line));
            }
            continue;
        }
        if !continued && is_blank_or_comment(text, &[' ', '\t']) {
            roles.push((LineRole::ShellComment, line));
            continue;
        }
        roles.push((LineRole::Shell, line));
        pending.extend(heredoc_openers(text));
        continued = text.ends_with('\\');
        if !continued {
            body = pending.pop_front().map(HeredocBody::new);
        }
    }
    roles
}

/// Whether `line` is empty or a comment once the `blanks` before its first word are removed
/// (bash's are space and tab; Python's also form feed).
fn is_blank_or_comment(line: &str, blanks: &[char]) -> bool {
    let code = line.trim_start_matches(blanks);
    code.is_empty() || code.starts_with('#')
}

/// A heredoc announced on a line of shell code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Heredoc {
    delimiter: String,
    /// `<<-`: bash removes leading tabs from the body and from the terminator.
    strips_tabs: bool,
    python: bool,
}

/// The heredocs opened on `line`, in order.
fn heredoc_openers(line: &str) -> Vec<Heredoc> {
    let mut openers = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("<<") {
        rest = &rest[at + 2..];
        if rest.starts_with('<') {
            rest = rest.trim_start_matches('<');
            continue;
        }
        let strips_tabs = rest.starts_with('-');
        rest = rest.strip_prefix('-').unwrap_or(rest).trim_start_matches([' ', '\t']);
        let (delimiter, quoted, length) = shell_word(rest);
        rest = &rest[length..];
        if !delimiter.is_empty() {
            let python = quoted && (delimiter == "PY" || delimiter.ends_with("_PY"));
            openers.push(Heredoc {
                delimiter,
                strips_tabs,
                python,
            });
        }
    }
    openers
}

/// The word at the start of `text` with its quotes removed, whether any part of it was quoted,
/// and its length in `text`.
fn shell_word(text: &str) -> (String, bool, usize) {
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            ' ' | '\t' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => return (word, quoted, at),
            '\'' | '"' => {
                quoted = true;
                for (_, inner) in chars.by_ref() {
                    if inner == c {
                        break;
                    }
                    word.push(inner);
                }
            }
            '\\' => {
                quoted = true;
                word.extend(chars.next().map(|(_, escaped)| escaped));
            }
            _ => word.push(c),
        }
    }
    (word, quoted, text.len())
}

/// A heredoc whose body is being read.
struct HeredocBody {
    heredoc: Heredoc,
    lines_read: usize,
    python: PythonState,
}

impl HeredocBody {
    fn new(heredoc: Heredoc) -> HeredocBody {
        HeredocBody {
            heredoc,
            lines_read: 0,
            python: PythonState::Code,
        }
    }

    fn ends_at(&self, line: &str) -> bool {
        let line = if self.heredoc.strips_tabs {
            line.trim_start_matches('\t')
        } else {
            line
        };
        line == self.heredoc.delimiter
    }

    fn role_of(&mut self, line: &str) -> LineRole {
        self.lines_read += 1;
        if !self.heredoc.python {
            return LineRole::Heredoc;
        }
        let skipped =
            self.lines_read > 2 && self.python == PythonState::Code && is_blank_or_comment(line, &[' ', '\t', '\x0c']);
        self.python = self.python.after(line);
        if skipped {
            LineRole::PythonComment
        } else {
            LineRole::Python
        }
    }
}

/// Where the Python tokenizer stands at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PythonState {
    /// Between statements or inside brackets: a comment or blank line next is skipped.
    Code,
    /// After a `\` that joins the next line to this one.
    Continued,
    /// Inside a string opened by `quote` (three of them when `triple`), which goes on.
    InString { quote: u8, triple: bool },
}

impl PythonState {
    /// The state after `line` (without its newline), read from this one.
    fn after(self, line: &str) -> PythonState {
        let bytes = line.as_bytes();
        let mut string = match self {
            PythonState::InString { quote, triple } => Some((quote, triple)),
            PythonState::Code | PythonState::Continued => None,
        };
        let mut at = 0;
        while at < bytes.len() {
            match string {
                Some((quote, triple)) => {
                    if bytes[at] == b'\\' {
                        at += 2;
                    } else if triple && bytes[at..].starts_with(&[quote; 3]) {
                        string = None;
                        at += 3;
                    } else {
                        if !triple && bytes[at] == quote {
                            string = None;
                        }
                        at += 1;
                    }
                }
                None => match bytes[at] {
                    b'#' => return PythonState::Code,
                    quote @ (b'\'' | b'"') => {
                        let triple = bytes[at..].starts_with(&[quote; 3]);
                        string = Some((quote, triple));
                        at += if triple { 3 } else { 1 };
                    }
                    _ => at += 1,
                },
            }
        }
        match string {
            // An unclosed one-quote string goes on only after a `\` (otherwise Python refuses
            // the program); either way the next line is not skipped.
            Some((quote, triple)) => PythonState::InString { quote, triple },
            None if line.ends_with('\\') => PythonState::Continued,
            None => PythonState::Code,
        }
    }
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
    prelude.set(
        "EXECUTION_NAME",
        "executionName",
        PreludeValue::Execution(worker.execution.clone()),
    )?;
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
            execution: "nightly-2026-11-21".parse().unwrap(),
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
             export AWS_REGION='us-west-2'\nlib() { :; }\nlib\n"
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

    #[test]
    fn comment_and_blank_lines_are_dropped_and_code_is_kept_as_written() {
        let script = "# shellcheck shell=bash\n\nset -euo pipefail\n  # indented comment\n\t\n\
                      f() { # VERSION JOB\n    echo '#1' \"# 2\" a#b # trailing\n}\n   \n";
        assert_eq!(
            without_comment_lines(script),
            "set -euo pipefail\nf() { # VERSION JOB\n    echo '#1' \"# 2\" a#b # trailing\n}\n"
        );
        // A form feed is no blank to bash: the line is a command, and stays.
        assert_eq!(without_comment_lines("\x0c# x\n"), "\x0c# x\n");
        assert_eq!(without_comment_lines("echo end"), "echo end");
    }

    #[test]
    fn a_line_after_a_backslash_continuation_is_kept() {
        // Dropped, the `# c` or blank line would no longer end the command: `echo a echo b`.
        for script in ["echo a \\\n# c\necho b\n", "echo a \\\n\necho b\n"] {
            assert_eq!(without_comment_lines(script), script);
        }
        assert_eq!(without_comment_lines("echo a \\\n  b\n# c\n"), "echo a \\\n  b\n");
    }

    #[test]
    fn heredoc_bodies_are_kept_byte_for_byte() {
        let script = "cat >unit <<'EOF'\n# data\n\n  #x\nEOF\n# dropped\n\
                      cat <<EOF; cat <<-\"TABS\"\n# first\n$HOME\nEOF\n\t# second\n\n\tTABS\n\
                      # dropped\nread -r a <<<\"$b\"\n# dropped after a here-string\n\
                      cat <<\\END >x\n# third\nEND\n";
        assert_eq!(
            without_comment_lines(script),
            "cat >unit <<'EOF'\n# data\n\n  #x\nEOF\n\
             cat <<EOF; cat <<-\"TABS\"\n# first\n$HOME\nEOF\n\t# second\n\n\tTABS\n\
             read -r a <<<\"$b\"\n\
             cat <<\\END >x\n# third\nEND\n"
        );
        // The body starts once the command's last continued line is read.
        let continued = "cat <<EOF \\\n  >x\n# body\nEOF\n";
        assert_eq!(without_comment_lines(continued), continued);
        // A `<<` that opens nothing (arithmetic here) only keeps the lines after it.
        let arithmetic = "echo $((1 << 2))\n# kept, as if a heredoc body\n";
        assert_eq!(without_comment_lines(arithmetic), arithmetic);
    }

    #[test]
    fn python_heredocs_lose_only_the_lines_python_skips() {
        let script = "python3 - <<'PY' ||\n#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n\
                      \"\"\"Doc.\n\n# not a comment: in the docstring\n\"\"\"\n# comment\n\n\
                      import sys  # trailing\nx = ('a'  # in brackets\n     # comment in brackets\n     'b')\n\
                      y = \"#\" + '''\n# in a string\n'''\nz = 1 + \\\n\n\
                      s = 'it\\'s \\\n# in a continued string'\n    # indented comment\nPY\n  # dropped\n  die\n\
                      cat <<'NOT_PYTHON'\n# kept\nNOT_PYTHON\n";
        assert_eq!(
            without_comment_lines(script),
            "python3 - <<'PY' ||\n#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n\
             \"\"\"Doc.\n\n# not a comment: in the docstring\n\"\"\"\n\
             import sys  # trailing\nx = ('a'  # in brackets\n     'b')\n\
             y = \"#\" + '''\n# in a string\n'''\nz = 1 + \\\n\n\
             s = 'it\\'s \\\n# in a continued string'\nPY\n  die\n\
             cat <<'NOT_PYTHON'\n# kept\nNOT_PYTHON\n"
        );
        // Unquoted, the shell expands the body: it is not taken for a plain Python program.
        let unquoted = "python3 - <<PY\n# $HOME\nPY\n";
        assert_eq!(without_comment_lines(unquoted), unquoted);
    }

    const COMMON: &str = include_str!("../../../userdata/common.sh");
    const APT_REPOSITORY: &str = include_str!("../../../userdata/apt_repository.py");
    /// The job scripts, each run after `common.sh` (update-repos.sh also after the index
    /// generator, which update-repositories embeds and tests).
    const JOB_SCRIPTS: [(&str, &str); 4] = [
        (
            "make-source-tarball.sh",
            include_str!("../../../userdata/make-source-tarball.sh"),
        ),
        (
            "make-binary-package.sh",
            include_str!("../../../userdata/make-binary-package.sh"),
        ),
        ("update-repos.sh", include_str!("../../../userdata/update-repos.sh")),
        (
            "publish-release-source.sh",
            include_str!("../../../userdata/publish-release-source.sh"),
        ),
    ];

    /// Runs `program` with `args` and `stdin`; its output, unless it fails the test. (The
    /// Lambda crates' tests use `pipeline_testing::process::stdout_of`; this crate stays free
    /// of the testing crate, which would link the AWS SDK into its unit tests.)
    fn run(program: &str, args: &[&std::ffi::OsStr], stdin: &str) -> String {
        use std::process::{Command, Stdio};
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs bash with `options` on `script` written to a file, as cloud-init runs user data.
    fn bash_on_file(options: &[&str], script: &str, name: &str) -> String {
        let path = std::env::temp_dir().join(format!("user-data-{}-{name}", std::process::id()));
        std::fs::write(&path, script).unwrap();
        let mut args: Vec<&std::ffi::OsStr> = options.iter().map(std::ffi::OsStr::new).collect();
        args.push(path.as_os_str());
        let output = run("bash", &args, "");
        std::fs::remove_file(&path).unwrap();
        output
    }

    /// What bash parses `script` into, as bash prints it back: the script made the body of a
    /// function, which is defined, not run, then printed by `declare -f` (comments gone;
    /// strings and heredoc bodies as they are).
    fn bash_parse(script: &str, name: &str) -> String {
        let wrapped = format!("__user_data() {{\n{script}\n}}\ndeclare -f __user_data\n");
        bash_on_file(&[], &wrapped, &format!("parse-{name}"))
    }

    /// Python's syntax tree of `program`: without line numbers, with every string (docstrings
    /// included).
    fn python_ast(program: &str) -> String {
        let dump = "import ast, sys; print(ast.dump(ast.parse(sys.stdin.read())))";
        run("python3", &["-c".as_ref(), dump.as_ref()], program)
    }

    #[test]
    fn bash_parses_each_job_the_same_without_its_comment_lines() {
        for (name, script) in JOB_SCRIPTS {
            let scripts = format!("{COMMON}\n{script}");
            // Python heredocs are kept whole here: bash prints their bodies as they are.
            let stripped: String = line_roles(&scripts)
                .into_iter()
                .filter(|(role, _)| *role != LineRole::ShellComment)
                .map(|(_, line)| line)
                .collect();
            assert!(stripped.len() < scripts.len() * 4 / 5, "{name}: too little dropped");
            assert_eq!(
                bash_parse(&stripped, name),
                bash_parse(&scripts, name),
                "{name}: bash reads the script differently without its comment lines"
            );
        }
    }

    #[test]
    fn python_reads_each_embedded_program_the_same_without_its_comment_lines() {
        let generator = format!("cat >apt_repository.py <<'APT_REPOSITORY_PY'\n{APT_REPOSITORY}APT_REPOSITORY_PY\n");
        let scripts = JOB_SCRIPTS
            .iter()
            .map(|(_, script)| *script)
            .chain([COMMON, generator.as_str()]);
        let mut programs = 0;
        for script in scripts {
            let mut program: Vec<(LineRole, &str)> = Vec::new();
            // A shell line after the last one ends the last program.
            for (role, line) in line_roles(script).into_iter().chain([(LineRole::Shell, "")]) {
                if matches!(role, LineRole::Python | LineRole::PythonComment) {
                    program.push((role, line));
                } else if !program.is_empty() {
                    let whole: String = program.iter().map(|(_, line)| *line).collect();
                    let kept: String = program
                        .iter()
                        .filter(|(role, _)| *role == LineRole::Python)
                        .map(|(_, line)| *line)
                        .collect();
                    assert_eq!(python_ast(&kept), python_ast(&whole), "in:\n{whole}");
                    programs += 1;
                    program.clear();
                }
            }
        }
        // write_manifest's, the two of update-repos.sh, and the index generator.
        assert_eq!(programs, 4);
        assert!(
            without_comment_lines(&generator).len() < generator.len() - 500,
            "the generator's comment lines are dropped"
        );
    }

    /// The longest prelude a launcher plausibly writes: every variable any launcher sets, each
    /// as long as it plausibly gets (names at AWS's limits, secrets as full ARNs) and not
    /// repetitive, so that it compresses no better than real values.
    fn longest_prelude() -> Prelude {
        let bucket = |purpose: &str| -> BucketName {
            format!("hhvm-{purpose}-123456789012-ap-southeast-3-0123456789abcdefghijklmnopqr")[..63]
                .parse()
                .unwrap()
        };
        let buckets = Buckets {
            downloads: bucket("downloads"),
            scratch: bucket("scratch"),
        };
        let arn = |name: &str| format!("arn:aws:secretsmanager:ap-southeast-3:123456789012:secret:hhvm/{name}");
        let settings: Vec<(String, String)> = [
            ("AWS_REGION", "ap-southeast-3".to_string()),
            (
                "PACKAGING_REPO_URL",
                "https://git-codecommit.ap-southeast-3.amazonaws.com/v1/repos/hhvm-packaging-mirror".into(),
            ),
            ("SIGNING_KEY_SECRET_ID", arn("package-signing-key-Xy7Qz2")),
            ("SIGNING_KEY_ID", "0F3A1C9D2E4B6A8C7D1E2F3A4B5C6D7E8F9A0B1C".into()),
            ("STAGING_DEPLOY_KEY_SECRET_ID", arn("staging-repo-deploy-key-Ab3dE9")),
            ("PUBLIC_DEPLOY_KEY_SECRET_ID", arn("public-repo-deploy-key-Qw8rT1")),
            (
                "STAGING_REPO_URL",
                "git@github.com:hhvm-staging-mirror/hhvm-staging.git".into(),
            ),
            ("PUBLIC_REPO_URL", "git@github.com:facebook/hhvm.git".into()),
            ("NODIST_BUCKET", bucket("nodist").to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        let worker = WorkerRequest {
            version: "4.172.10".parse().unwrap(),
            packaging_branch: "HHVM-4.172".parse().unwrap(),
            execution: "release-4-172-10-rebuild-after-mirror-outage-7f3e2a91c4d5-build-4_172_10-r2"
                .parse()
                .unwrap(),
        };
        let mut prelude = base_prelude(&worker, &buckets, &settings).unwrap();
        prelude
            .set(
                "PACKAGING_BRANCH",
                "packagingBranch",
                PreludeValue::Branch(worker.packaging_branch),
            )
            .unwrap()
            .set("SOURCE_BUCKET", "source.bucket", PreludeValue::Bucket(bucket("source")))
            .unwrap()
            .set(
                "SOURCE_KEY",
                "source.path",
                PreludeValue::Key("source/hhvm-4.172.10.tar.gz".parse().unwrap()),
            )
            .unwrap()
            .set(
                "DISTRO",
                "distros",
                PreludeValue::Distro("ubuntu-24.10-oracular".parse().unwrap()),
            )
            .unwrap();
        prelude
    }

    #[test]
    fn each_jobs_user_data_is_valid_bash_under_its_shebang() {
        let prelude = longest_prelude();
        for (name, script) in JOB_SCRIPTS {
            let user_data = worker_user_data(&prelude, COMMON, script).unwrap();
            assert!(user_data.starts_with("#!/bin/bash\n"), "{name}");
            bash_on_file(&["-n"], &user_data, name);
        }
    }

    #[test]
    fn user_data_with_the_longest_prelude_leaves_a_quarter_of_ec2s_limit() {
        let prelude = longest_prelude();
        // update-repos.sh is measured with the generator it embeds, in update-repositories.
        for (name, script) in JOB_SCRIPTS.into_iter().filter(|(name, _)| *name != "update-repos.sh") {
            let whole = prelude.render(&format!("{COMMON}\n{script}"));
            let user_data = worker_user_data(&prelude, COMMON, script).unwrap();
            let compressed = compressed_user_data(&user_data).len();
            println!(
                "{name}: {} bytes, {compressed} compressed (with comment lines: {} bytes, {} compressed)",
                user_data.len(),
                whole.len(),
                compressed_user_data(&whole).len()
            );
            assert!(
                compressed <= MAX_USER_DATA_BYTES * 3 / 4,
                "{name}: {compressed} bytes compressed"
            );
        }
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
