//! The command line: every command, its arguments and its help (with examples).

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  hhvmctl build 4.168.2                         build every distro of 4.168.2
  hhvmctl build 4.168.2 --distro ubuntu-24.04-noble --force
                                                rebuild one distro, even if it was built
  hhvmctl release 4.168.2 4.167.5               build both, then publish them one at a time
  hhvmctl publish 4.168.2 --approval            publish a built version once approved
  hhvmctl approve publish-4.168.2-20261202-013005-042
                                                let the held release publish
  hhvmctl nightly --force                       today's nightly, even if the source has not moved
  hhvmctl status 4.168.2                        what is built and published of a version
  hhvmctl status release-4.168.2-20261202-013005-042
                                                where an execution is, with its children, its
                                                workers' markets and its instance-hours
  hhvmctl plan 4.168.2                          what a build and publish of 4.168.2 would do
  hhvmctl logs 4.168.2 --distro debian-12-bookworm --follow
  hhvmctl rerun release-4.168.2-20261202-013005-042
                                                start it again; finished work is skipped
  hhvmctl invoke hhvm-get-build-version --payload '{\"version\": \"4.168.2\"}'

The stack is found by name (--stack, or HHVM_PIPELINE_STACK; default hhvm-pipeline) with the
standard AWS configuration: credentials, region and AWS_ENDPOINT_URL (the local stack) as the
AWS CLI reads them.

Exit status: 0 done; 1 the execution or function failed; 2 usage; 3 not found; 4 AWS error.";

/// Start, follow and resume the HHVM package pipeline's builds and releases.
#[derive(Debug, Parser)]
#[command(name = "hhvmctl", version, after_help = EXAMPLES)]
pub struct Cli {
    /// The CloudFormation stack that deployed the pipeline.
    #[arg(long, global = true, env = "HHVM_PIPELINE_STACK", default_value = "hhvm-pipeline")]
    pub stack: String,
    /// Print one JSON document instead of lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log what the command does (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build one version (every distro, or those given) with hhvm-build.
    Build {
        /// A release (4.168.2) or a nightly (2026.12.02).
        version: String,
        /// Build only this distro (repeatable).
        #[arg(long = "distro", value_name = "DISTRO")]
        distros: Vec<String>,
        /// Build even the distros that already have a success marker.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        polling: PollArgs,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Build several versions in parallel, then publish them one at a time
    /// (hhvm-build-and-publish-multi).
    Release {
        #[arg(required = true, value_name = "VERSION")]
        versions: Vec<String>,
        #[command(flatten)]
        gate: GateArgs,
        #[command(flatten)]
        polling: PollArgs,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Publish a built version (hhvm-publish-release).
    Publish {
        version: String,
        /// Publish only this distro (repeatable).
        #[arg(long = "distro", value_name = "DISTRO")]
        distros: Vec<String>,
        #[command(flatten)]
        gate: GateArgs,
        #[command(flatten)]
        polling: PollArgs,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Start today's nightly as the schedule does (hhvm-start-nightly): only when the source
    /// has moved since the last published nightly, unless --force.
    Nightly {
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        polling: PollArgs,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// What a build and publish of each version would do, before anything runs: which distros
    /// would build and which are skipped (their success markers), what would be published, and
    /// which CDN paths the publish would invalidate.
    Plan {
        #[arg(required = true, value_name = "VERSION")]
        versions: Vec<String>,
        /// Only this distro (repeatable), as `build --distro` and `publish --distro` take it.
        #[arg(long = "distro", value_name = "DISTRO")]
        distros: Vec<String>,
        /// As `build --force`: distros with a success marker are built again.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Regenerate the download bucket's index pages (create-s3-index-html).
    Reindex,
    /// Where a version or an execution is: each phase and distro, children included. Each
    /// worker shows its market (spot or on-demand), instance type, launch and end time, and
    /// whether EC2 interrupted it (a spot reclaim; the distro is then rebuilt once on demand);
    /// a cost line gives the run's instance-hours, by market and per distro.
    Status {
        /// A version (what is built and published of it) or an execution (name or ARN).
        target: String,
        /// Keep watching until the execution ends.
        #[arg(long)]
        watch: bool,
        /// Seconds between looks while watching.
        #[arg(long, default_value_t = 5)]
        interval: u64,
    },
    /// Let a release held by the release gate publish (the execution, or its parent).
    Approve { execution: String },
    /// Stop a release held by the release gate: its execution fails with ReleaseRejected and
    /// the reason, having published nothing.
    Reject {
        execution: String,
        /// Why, for the execution's cause and whoever reads it.
        #[arg(long)]
        reason: String,
    },
    /// Print a worker's log from the scratch bucket.
    Logs {
        version: String,
        /// The distro's build log; without it, the source tarball's.
        #[arg(long)]
        distro: Option<String>,
        /// The repository update's log instead.
        #[arg(long, conflicts_with = "distro")]
        update: bool,
        /// Keep printing the log as the running worker uploads it, until its job ends.
        #[arg(short, long)]
        follow: bool,
        /// Seconds between looks while following.
        #[arg(long, default_value_t = 5, requires = "follow")]
        interval: u64,
    },
    /// Start an execution again with the same input under a new name: finished work is
    /// skipped (success markers), only what is missing runs.
    Rerun {
        /// The execution (name or ARN).
        execution: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Redrive a failed, timed-out or aborted execution from where it stopped (Step
    /// Functions redrive).
    Redrive {
        execution: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Invoke a function of the stack, as `aws lambda invoke` does, and print its answer.
    Invoke {
        /// The function's name without the stack's prefix (hhvm-get-build-version), or in full.
        function: String,
        /// The payload: JSON, or @FILE.
        #[arg(long, default_value = "{}")]
        payload: String,
    },
    /// Print the input and output of each state of an execution, or of one state.
    History {
        execution: String,
        /// Only this state (its every entry).
        #[arg(long, value_name = "NAME")]
        state: Option<String>,
        /// Every event, not only the states' entries and exits and the errors.
        #[arg(long, conflicts_with = "state")]
        all: bool,
    },
    /// Print a shell's completion script.
    Completions { shell: clap_complete::Shell },
}

/// The release gate: whether the publish waits for `hhvmctl approve` (the stack's
/// ReleasesRequireApproval decides when neither is given; nightlies never wait).
#[derive(Debug, Clone, Default, Args)]
pub struct GateArgs {
    /// Wait for approval before publishing.
    #[arg(long, conflicts_with = "no_approval")]
    pub approval: bool,
    /// Publish without waiting for approval.
    #[arg(long)]
    pub no_approval: bool,
}

impl GateArgs {
    /// The input's `requireApproval`, when one is asked for.
    pub fn require_approval(&self) -> Option<bool> {
        match (self.approval, self.no_approval) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// How often the machine looks at its workers and children: its input's poll settings, the
/// machine's own defaults when not given.
#[derive(Debug, Clone, Default, Args)]
pub struct PollArgs {
    /// Seconds between the machine's polls (pollIntervalSeconds; 60 by default).
    #[arg(long, value_name = "SECONDS")]
    pub poll_interval: Option<u32>,
    /// Polls before the machine gives up on a worker (pollLimit; 200 by default, at most 600).
    #[arg(long, value_name = "COUNT")]
    pub poll_limit: Option<u32>,
}

impl PollArgs {
    pub fn polling(&self) -> crate::requests::Polling {
        crate::requests::Polling {
            interval_seconds: self.poll_interval,
            limit: self.poll_limit,
        }
    }
}

/// How a started execution is followed.
#[derive(Debug, Clone, Args)]
pub struct FollowArgs {
    /// Print the execution and return once it has started.
    #[arg(long)]
    pub detach: bool,
    /// Seconds between looks while following.
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn distros_repeat_and_follow_options_apply_to_every_starting_command() {
        let cli = Cli::parse_from([
            "hhvmctl",
            "build",
            "4.168.2",
            "--distro",
            "debian-12-bookworm",
            "--distro",
            "ubuntu-24.04-noble",
            "--detach",
        ]);
        let Command::Build {
            distros, follow, force, ..
        } = cli.command
        else {
            panic!("not a build: {cli:?}");
        };
        assert_eq!(distros, ["debian-12-bookworm", "ubuntu-24.04-noble"]);
        assert!(follow.detach && !force);
        assert_eq!(cli.stack, "hhvm-pipeline");
        assert!(
            Cli::try_parse_from(["hhvmctl", "release"]).is_err(),
            "a release needs a version"
        );
        assert!(Cli::try_parse_from(["hhvmctl", "logs", "4.168.2", "--distro", "x", "--update"]).is_err());
    }
}
