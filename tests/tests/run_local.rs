//! `bin/run-local`, the README's first command, run as a user runs it: it checks its tools,
//! builds, starts the local stack, starts today's nightly with hhvmctl and follows it, shows
//! what was published, proves it installable with apt-get and stops everything.

use std::process::{Command, Stdio};

use pipeline_core::Version;
use pipeline_testing::process::last_lines;
use pipeline_tests::workspace_root;

#[test]
fn bin_run_local_publishes_todays_nightly_and_apt_gets_it() {
    let root = workspace_root();
    let output = Command::new(root.join("bin/run-local"))
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .expect("run bin/run-local");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tail = last_lines(&printed, 40);
    assert!(output.status.success(), "bin/run-local: {}\n{tail}", output.status);
    let works = printed
        .lines()
        .find_map(|line| line.strip_prefix("the published repository works: "))
        .unwrap_or_else(|| panic!("no verdict on the published repository:\n{tail}"));
    let version = works
        .strip_suffix(" is installable with apt")
        .unwrap_or_else(|| panic!("{works}"));
    let version: Version = version.parse().unwrap_or_else(|e| panic!("{version}: {e}"));
    assert!(version.is_nightly(), "{version} is today's nightly");
    assert!(
        printed.contains("signature verified"),
        "apt-get verified the repository's signature:\n{tail}"
    );
}
