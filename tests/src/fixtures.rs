//! The workers' local world, made at start-up in the run directory: git repositories standing
//! for the packaging repository and HHVM's staging and public repositories, and a throwaway
//! signing key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::StackError;

/// The release branch the fixture packaging repository has besides `master`.
pub const RELEASE_BRANCH: &str = "HHVM-4.168";
/// Every release branch of the fixture packaging repository: two, so that two releases can be
/// built and published in one run.
pub const RELEASE_BRANCHES: [&str; 2] = [RELEASE_BRANCH, "HHVM-4.167"];

/// Runs `program` with `args` (in `dir`), failing with its output if it fails; returns stdout.
pub(crate) fn run(
    dir: Option<&Path>,
    envs: &[(&str, &Path)],
    program: &str,
    args: &[&str],
) -> Result<String, StackError> {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = command
        .output()
        .map_err(|error| StackError(format!("could not run {program}: {error}")))?;
    if !output.status.success() {
        return Err(StackError(format!(
            "{program} {} failed ({}): {}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

const GIT_IDENTITY: [&str; 4] = ["-c", "user.name=local-stack", "-c", "user.email=local-stack@localhost"];

/// A bare repository at `bare` holding the files of `sources` (later ones win) as one commit on
/// `master`, plus `branches` pointing at it.
fn make_repository(bare: &Path, sources: &[PathBuf], branches: &[&str]) -> Result<(), StackError> {
    let work = bare.with_extension("work");
    std::fs::create_dir_all(&work).map_err(|e| StackError(format!("create {}: {e}", work.display())))?;
    for source in sources {
        let from = format!("{}/.", source.display());
        run(None, &[], "cp", &["-a", &from, &work.to_string_lossy()])?;
    }
    // `master` publishes nightlies to the plain codename dists only, as the packaging repository's
    // master does; release branches add their pinned dist below.
    let repositories = work.join("DEBIAN_REPOSITORIES");
    if repositories.exists() {
        std::fs::write(&repositories, "DISTRO\n")
            .map_err(|e| StackError(format!("write {}: {e}", repositories.display())))?;
    }
    run(Some(&work), &[], "git", &["init", "--quiet", "--initial-branch=master"])?;
    run(Some(&work), &[], "git", &["add", "--all"])?;
    let mut commit = GIT_IDENTITY.to_vec();
    commit.extend(["commit", "--quiet", "--message", "local stack fixture"]);
    run(Some(&work), &[], "git", &commit)?;
    for branch in branches {
        run(Some(&work), &[], "git", &["branch", branch])?;
        commit_release_repositories(&work, branch)?;
    }
    run(
        None,
        &[],
        "git",
        &[
            "clone",
            "--quiet",
            "--bare",
            &work.to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    )?;
    std::fs::remove_dir_all(&work).map_err(|e| StackError(format!("remove {}: {e}", work.display())))
}

/// On release branch `HHVM-x.y` of a tree with `DEBIAN_REPOSITORIES`, as in the packaging
/// repository: packages go to `<codename>` and `<codename>-x.y`. Other branches and trees stay
/// as they are.
fn commit_release_repositories(work: &Path, branch: &str) -> Result<(), StackError> {
    let file = work.join("DEBIAN_REPOSITORIES");
    let Some(release) = branch.strip_prefix("HHVM-") else {
        return Ok(());
    };
    if !file.exists() {
        return Ok(());
    }
    run(Some(work), &[], "git", &["checkout", "--quiet", branch])?;
    std::fs::write(&file, format!("DISTRO\nDISTRO-{release}\n"))
        .map_err(|e| StackError(format!("write {}: {e}", file.display())))?;
    let mut commit = GIT_IDENTITY.to_vec();
    commit.extend([
        "commit",
        "--quiet",
        "--allow-empty",
        "--all",
        "--message",
        "release branch repositories",
    ]);
    run(Some(work), &[], "git", &commit)?;
    run(Some(work), &[], "git", &["checkout", "--quiet", "master"])?;
    Ok(())
}

/// The repositories of a run: `file://` URLs the workers clone and push.
#[derive(Debug, Clone)]
pub struct Repositories {
    pub packaging: PathBuf,
    pub staging: PathBuf,
    pub public: PathBuf,
}

/// Makes the packaging repository (the test fixture `tests/fixtures/packaging` with the local
/// build and source tarball commands of `tests/fixtures/local/packaging` over it; branches
/// `master`, `HHVM-4.168` and `HHVM-4.167`), the staging repository (the small source tree of
/// `tests/fixtures/local/hhvm-source`), and an empty public repository.
pub fn make_repositories(git_dir: &Path, fixtures: &Path) -> Result<Repositories, StackError> {
    let repositories = Repositories {
        packaging: git_dir.join("packaging.git"),
        staging: git_dir.join("hhvm-staging.git"),
        public: git_dir.join("hhvm-public.git"),
    };
    make_repository(
        &repositories.packaging,
        &[fixtures.join("packaging"), fixtures.join("local/packaging")],
        &RELEASE_BRANCHES,
    )?;
    make_repository(&repositories.staging, &[fixtures.join("local/hhvm-source")], &[])?;
    run(
        None,
        &[],
        "git",
        &["init", "--quiet", "--bare", &repositories.public.to_string_lossy()],
    )?;
    Ok(repositories)
}

/// The throwaway signing key of a run.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// Full fingerprint: what workers sign with (`SIGNING_KEY_ID`).
    pub fingerprint: String,
    /// ASCII-armored secret key: the Secrets Manager secret's value.
    pub secret_key: String,
    /// Binary public key, usable as an apt keyring (`signed-by=`).
    pub public_keyring: PathBuf,
    /// ASCII-armored public key.
    pub public_key: PathBuf,
}

/// Makes a signing key without passphrase in a private GNUPGHOME under `dir`.
pub fn make_signing_key(dir: &Path) -> Result<SigningKey, StackError> {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).map_err(|e| StackError(format!("create {}: {e}", home.display())))?;
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| StackError(format!("chmod {}: {e}", home.display())))?;
    let env = [("GNUPGHOME", home.as_path())];
    run(
        None,
        &env,
        "gpg",
        &[
            "--batch",
            "--quiet",
            "--passphrase",
            "",
            "--quick-gen-key",
            "HHVM Local Stack <local-stack@localhost>",
            "ed25519",
            "sign",
            "never",
        ],
    )?;
    let listing = run(None, &env, "gpg", &["--batch", "--with-colons", "--list-secret-keys"])?;
    let fingerprint = listing
        .lines()
        .find_map(|line| line.strip_prefix("fpr:"))
        .and_then(|rest| rest.split(':').find(|field| field.len() == 40))
        .ok_or_else(|| StackError(format!("gpg listed no fingerprint: {listing}")))?
        .to_string();
    let secret_key = run(
        None,
        &env,
        "gpg",
        &["--batch", "--armor", "--export-secret-keys", &fingerprint],
    )?;
    let public_key = dir.join("signing-key.asc");
    let public_keyring = dir.join("signing-key.gpg");
    run(
        None,
        &env,
        "gpg",
        &[
            "--batch",
            "--yes",
            "--armor",
            "--output",
            &public_key.to_string_lossy(),
            "--export",
            &fingerprint,
        ],
    )?;
    run(
        None,
        &env,
        "gpg",
        &[
            "--batch",
            "--yes",
            "--output",
            &public_keyring.to_string_lossy(),
            "--export",
            &fingerprint,
        ],
    )?;
    // The agent this started would otherwise outlive the stack.
    let _ = run(None, &env, "gpgconf", &["--kill", "gpg-agent"]);
    Ok(SigningKey {
        fingerprint,
        secret_key,
        public_keyring,
        public_key,
    })
}
