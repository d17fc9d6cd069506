//! The status view of recorded execution histories (from local-stack runs, each event trimmed
//! to the fields the view reads: `hhvmctl history EXECUTION --all --json`), against their
//! snapshots in `tests/snapshots/`: the text an operator sees and the `--json` document. The
//! histories: a build whose distro failed, a release, a publish held by the release gate, and a
//! build whose spot worker EC2 reclaimed (rebuilt on demand).
//! `UPDATE_SNAPSHOTS=1 cargo test -p hhvmctl` rewrites them after a deliberate change; review
//! the diff. The same lines as a terminal shows them live, and as plain lines without one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hhvmctl::display::Display;
use hhvmctl::history::Event;
use hhvmctl::status::{ExecutionView, Progress, lines, render};
use indicatif::{InMemoryTerm, MultiProgress, ProgressDrawTarget};
use serde::Deserialize;

#[derive(Deserialize)]
struct Record {
    execution: String,
    machine: String,
    event: Event,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The view of the first execution of a recording, its children assembled under it.
fn replay(name: &str) -> ExecutionView {
    replay_first(name, usize::MAX)
}

/// The view of a recording cut after its first `records` events (in recording order: each
/// execution's history in turn), as it looked while it ran.
fn replay_first(name: &str, records: usize) -> ExecutionView {
    let path = fixture_dir().join("fixtures").join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut order: Vec<String> = Vec::new();
    let mut histories: BTreeMap<String, (String, Vec<Event>)> = BTreeMap::new();
    for line in text.lines().take(records) {
        let record: Record = serde_json::from_str(line).unwrap_or_else(|error| panic!("{name}: {error}: {line}"));
        if !histories.contains_key(&record.execution) {
            order.push(record.execution.clone());
        }
        histories
            .entry(record.execution)
            .or_insert_with(|| (record.machine, Vec::new()))
            .1
            .push(record.event);
    }
    let views: BTreeMap<String, ExecutionView> = histories
        .iter()
        .map(|(arn, (machine, events))| {
            (
                arn.clone(),
                ExecutionView::from_history(arn, machine, events, Some("hhvm-scratch")),
            )
        })
        .collect();
    assemble(&views, &order[0])
}

fn assemble(views: &BTreeMap<String, ExecutionView>, arn: &str) -> ExecutionView {
    let mut view = views[arn].clone();
    for child in view.child_arns.clone() {
        if views.contains_key(&child) {
            view.add_child(assemble(views, &child));
        }
    }
    view
}

/// Compares `actual` with the snapshot `name`, or writes it under UPDATE_SNAPSHOTS=1.
fn assert_snapshot(name: &str, actual: &str) {
    let path = fixture_dir().join("snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert!(
        expected == actual,
        "{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn snapshot_of(view: &ExecutionView) -> String {
    // Every execution of a recording has ended: the time passed for `now` changes nothing.
    let text = render(view, view.ended_at.unwrap_or_default());
    let document = serde_json::to_string_pretty(view).expect("a view serialises");
    format!("{text}\n{document}\n")
}

#[test]
fn a_failed_distro_shows_the_failed_step_its_cause_and_its_log() {
    let view = replay("failed-distro");
    assert_eq!(view.status, "FAILED");
    let build = &view.children[0];
    assert_eq!(build.machine, "hhvm-build");
    let failure = build.failure.as_ref().expect("the build's failure");
    assert_eq!(failure.error.as_deref(), Some("BuildFailed"));
    let failed: Vec<&str> = build
        .workers
        .iter()
        .filter(|worker| worker.progress == Progress::Failed)
        .map(|worker| worker.target.as_str())
        .collect();
    assert_eq!(failed, ["ubuntu-24.04-noble"]);
    let log = build
        .workers
        .iter()
        .find(|w| w.target == "ubuntu-24.04-noble")
        .and_then(|w| w.log.clone());
    assert!(
        log.as_deref()
            .is_some_and(|log| log.starts_with("s3://hhvm-scratch/logs/4.168.3/binary-package/ubuntu-24.04-noble/i-")),
        "{log:?}"
    );
    assert!(render(&view, 0.0).contains("; log s3://hhvm-scratch/logs/4.168.3/binary-package/ubuntu-24.04-noble/"));
    assert_snapshot("failed-distro.txt", &snapshot_of(&view));
}

#[test]
fn a_release_shows_its_build_and_publish_children_done() {
    let view = replay("released");
    assert_eq!(view.status, "SUCCEEDED");
    let machines: Vec<&str> = view.children.iter().map(|child| child.machine.as_str()).collect();
    assert_eq!(machines, ["hhvm-build", "hhvm-publish-release"]);
    assert!(view.is_over());
    for child in &view.children {
        assert!(child.succeeded(), "{}", child.name);
        assert!(
            child.phases.iter().all(|phase| phase.progress == Progress::Done),
            "{:?}",
            child.phases
        );
        assert!(child.workers.iter().all(|worker| worker.progress == Progress::Done));
    }
    assert_snapshot("released.txt", &snapshot_of(&view));
}

#[test]
fn an_interrupted_spot_worker_is_shown_beside_its_on_demand_rebuild_with_the_runs_cost() {
    let view = replay("interrupted-distro");
    assert_eq!(view.status, "SUCCEEDED");
    let noble: Vec<&hhvmctl::status::Worker> = view
        .workers
        .iter()
        .filter(|worker| worker.target == "ubuntu-24.04-noble")
        .collect();
    assert_eq!(noble.len(), 2, "the interrupted worker and its rebuild");
    assert_eq!(noble[0].progress, Progress::Interrupted);
    assert!(noble[0].interrupted);
    assert_eq!(noble[0].market.as_deref(), Some("spot"));
    assert_eq!(noble[1].progress, Progress::Done);
    assert_eq!(noble[1].market.as_deref(), Some("on-demand"));
    assert_eq!(noble[1].replaces.as_deref(), Some(noble[0].instance.as_str()));
    let bookworm: Vec<&hhvmctl::status::Worker> = view
        .workers
        .iter()
        .filter(|worker| worker.target == "debian-12-bookworm")
        .collect();
    assert_eq!(bookworm.len(), 1, "the other distro built once");
    assert_eq!(
        (bookworm[0].market.as_deref(), bookworm[0].progress),
        (Some("spot"), Progress::Done)
    );
    let cost = view.cost.as_ref().expect("the run's cost");
    let sum: f64 = cost.by_market.values().sum();
    assert!((sum - cost.instance_hours).abs() < 1e-9, "{cost:?}");
    assert!(
        cost.by_market["spot"] > 0.0 && cost.by_market["on-demand"] > 0.0,
        "{cost:?}"
    );
    let text = render(&view, view.ended_at.unwrap_or_default());
    assert!(text.contains("  interrupted ubuntu-24.04-noble on i-"), "{text}");
    assert!(text.contains("\n  cost     0.0"), "{text}");
    assert_snapshot("interrupted-distro.txt", &snapshot_of(&view));
}

#[test]
fn an_execution_without_events_yet_is_starting() {
    let arn = "arn:aws:states:us-east-1:123456789012:execution:hhvm-build:build-4.168.2-20261202-013005-042";
    let view = ExecutionView::from_history(arn, "hhvm-build", &[], None);
    assert_eq!(view.started_at, None);
    assert_eq!(
        render(&view, 1_796_184_000.0).lines().next(),
        Some("hhvm-build build-4.168.2-20261202-013005-042 RUNNING (starting)")
    );
}

#[test]
fn a_release_held_by_the_gate_says_how_to_approve_or_reject_it() {
    let view = replay("waiting-for-approval");
    assert_eq!(view.status, "RUNNING");
    assert!(view.awaiting_approval);
    assert!(view.workers.is_empty(), "nothing is published before approval");
    let gate = view.phases.last().expect("phases");
    assert_eq!(gate.name, hhvmctl::status::APPROVAL_STATE);
    assert_eq!(gate.progress, Progress::Running);
    let recorded = std::fs::read_to_string(fixture_dir().join("fixtures/waiting-for-approval.jsonl")).unwrap();
    let events: Vec<Event> = recorded
        .lines()
        .map(|line| serde_json::from_str::<Record>(line).unwrap().event)
        .collect();
    assert!(
        hhvmctl::status::approval_token(&events).is_some(),
        "approve reads the token from the history"
    );
    // Still running: the view is rendered 3 s after the last recorded event.
    let now = events.last().map(|event| event.timestamp).unwrap_or_default() + 3.0;
    let text = render(&view, now);
    assert!(
        text.contains(&format!(
            "waiting  for approval: hhvmctl approve {0}, or hhvmctl reject {0} --reason WHY",
            view.name
        )),
        "{text}"
    );
    let document = serde_json::to_string_pretty(&view).expect("a view serialises");
    assert_snapshot("waiting-for-approval.txt", &format!("{text}\n{document}\n"));
}

#[test]
fn a_running_execution_times_what_runs_at_now() {
    let recorded = std::fs::read_to_string(fixture_dir().join("fixtures/failed-distro.jsonl")).unwrap();
    // The parent's history up to its child's start: still running.
    let events: Vec<Event> = recorded
        .lines()
        .map(|line| serde_json::from_str::<Record>(line).unwrap())
        .filter(|record| record.machine == "hhvm-build-and-publish")
        .map(|record| record.event)
        .take_while(|event| !event.ends_execution())
        .collect();
    let arn = "arn:aws:states:us-east-1:123456789012:execution:hhvm-build-and-publish:failing";
    let view = ExecutionView::from_history(arn, "hhvm-build-and-publish", &events, None);
    assert_eq!(view.status, "RUNNING");
    assert!(!view.is_over());
    let later = view.started_at.expect("started") + 125.0;
    assert!(
        render(&view, later)
            .lines()
            .next()
            .unwrap()
            .ends_with("RUNNING (2m 05s)"),
        "{}",
        render(&view, later)
    );
}

#[test]
fn the_publish_machine_holds_releases_in_the_state_the_view_knows() {
    let path = fixture_dir().join("../../state-machines/hhvm-publish-release.asl.json");
    let definition: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let gate = &definition["States"][hhvmctl::status::APPROVAL_STATE];
    assert_eq!(gate["Resource"], "arn:aws:states:::sns:publish.waitForTaskToken");
    // `hhvmctl approve` reads the token back from the scheduled task's parameters.
    assert_eq!(gate["Parameters"]["Message"]["taskToken.$"], "$$.Task.Token");
}

fn live_display(term: &InMemoryTerm) -> Display {
    Display::live(MultiProgress::with_draw_target(ProgressDrawTarget::term_like(
        Box::new(term.clone()),
    )))
}

/// The screen once `drawn` holds of it, or as it is after five seconds. indicatif limits how
/// often it draws (a line changed right after another waits for the next draw) and a running
/// line is drawn by its spinner's ticker thread: right after `show`, a row can still be blank
/// or show its previous text.
fn screen_once(term: &InMemoryTerm, drawn: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let screen = term.contents();
        if drawn(&screen) || std::time::Instant::now() > deadline {
            return screen;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn on_a_terminal_each_line_is_redrawn_in_place_with_a_spinner_on_what_runs() {
    let term = InMemoryTerm::new(80, 200);
    let mut display = live_display(&term);
    let early = replay_first("released", 120);
    assert_eq!(early.status, "RUNNING");
    let early_lines = lines(&early, early.started_at.expect("started") + 30.0);
    display.show(&early_lines);
    let screen = screen_once(&term, |screen| {
        screen.lines().count() == early_lines.len()
            && screen
                .lines()
                .zip(&early_lines)
                .all(|(row, line)| row.ends_with(&format!("{}{}", "  ".repeat(line.depth), line.text)))
    });
    assert_eq!(screen.lines().count(), early_lines.len(), "one row per line:\n{screen}");
    for (row, line) in screen.lines().zip(&early_lines) {
        let indented = format!("{}{}", "  ".repeat(line.depth), line.text);
        if line.progress == Progress::Running {
            assert!(row.ends_with(&format!(" {indented}")), "{row:?}");
            assert!(!row.starts_with(' '), "a spinner leads a running line: {row:?}");
        } else {
            assert_eq!(row, format!("  {indented}"));
        }
    }

    let done = replay("released");
    let done_lines = lines(&done, done.ended_at.unwrap_or_default());
    display.show(&done_lines);
    let settled: Vec<String> = done_lines
        .iter()
        .map(|line| format!("  {}{}", "  ".repeat(line.depth), line.text))
        .collect();
    let screen = screen_once(&term, |screen| screen.lines().eq(settled.iter().map(String::as_str)));
    assert_eq!(
        screen.lines().count(),
        done_lines.len(),
        "lines are redrawn, not appended:\n{screen}"
    );
    for (row, line) in screen.lines().zip(&done_lines) {
        assert_eq!(row, format!("  {}{}", "  ".repeat(line.depth), line.text));
    }
    assert!(!screen.contains("running "), "{screen}");
    display.finish();
    assert_eq!(term.contents(), "", "the live lines make way for the final view");
}

/// A `Write` the test can read back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn without_a_terminal_a_line_is_printed_again_only_with_news_it_has_not_shown() {
    let captured = Captured::default();
    let mut display = Display::plain(Box::new(captured.clone()));
    let early = replay_first("released", 120);
    let early_lines = lines(&early, early.started_at.expect("started") + 30.0);
    display.show(&early_lines);
    // Time passing is no news.
    display.show(&lines(&early, early.started_at.expect("started") + 90.0));
    let printed = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(printed.lines().count(), early_lines.len(), "{printed}");
    let done = replay("released");
    let done_lines = lines(&done, done.ended_at.unwrap_or_default());
    display.show(&done_lines);
    // A polling state running again, as every poll enters it again: shown already.
    display.show(&early_lines);
    display.finish();
    let printed = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let changed = done_lines
        .iter()
        .filter(|line| {
            !early_lines
                .iter()
                .any(|early| early.key == line.key && early.news == line.news)
        })
        .count();
    assert!(changed > 0);
    assert_eq!(printed.lines().count(), early_lines.len() + changed, "{printed}");
}
