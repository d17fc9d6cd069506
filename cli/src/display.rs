//! How a followed execution's lines (`status::lines`) reach the operator: on a terminal, one
//! live line per phase and worker, redrawn in place (a spinner on what is running); otherwise a
//! plain line each time a line has news it has not shown before, so a log or CI output reads as
//! a history — a polling state, done and running again every poll, is shown once of each.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::status::{Line, Progress};

enum Output {
    Live(MultiProgress),
    Plain(Box<dyn Write + Send>),
}

pub struct Display {
    output: Output,
    /// Live: each line's bar.
    bars: Vec<(String, ProgressBar)>,
    /// Plain: the news printed of each line.
    shown: BTreeMap<String, BTreeSet<String>>,
}

impl Display {
    /// On stderr: live when it is a terminal.
    pub fn on_stderr() -> Display {
        if std::io::stderr().is_terminal() {
            Display::live(MultiProgress::new())
        } else {
            Display::plain(Box::new(std::io::stderr()))
        }
    }

    /// Live lines drawn by `progress` (on its own draw target).
    pub fn live(progress: MultiProgress) -> Display {
        Display {
            output: Output::Live(progress),
            bars: Vec::new(),
            shown: BTreeMap::new(),
        }
    }

    /// Plain lines written to `output`.
    pub fn plain(output: Box<dyn Write + Send>) -> Display {
        Display {
            output: Output::Plain(output),
            bars: Vec::new(),
            shown: BTreeMap::new(),
        }
    }

    pub fn show(&mut self, lines: &[Line]) {
        let mut previous: Option<ProgressBar> = None;
        for line in lines {
            let text = format!("{}{}", "  ".repeat(line.depth), line.text);
            match &mut self.output {
                Output::Live(progress) => {
                    let bar = match self.bars.iter().find(|(key, _)| key == &line.key) {
                        Some((_, bar)) => bar.clone(),
                        // A new line (a worker, a child) goes where it is in the view, not last.
                        None => {
                            let bar = match &previous {
                                Some(above) => progress.insert_after(above, ProgressBar::new_spinner()),
                                None => progress.insert(0, ProgressBar::new_spinner()),
                            };
                            self.bars.push((line.key.clone(), bar.clone()));
                            bar
                        }
                    };
                    previous = Some(bar.clone());
                    if line.progress == Progress::Running {
                        bar.set_style(running_style());
                        bar.set_message(text);
                        bar.enable_steady_tick(Duration::from_millis(250));
                    } else {
                        bar.disable_steady_tick();
                        bar.set_style(settled_style());
                        bar.set_message(text);
                        bar.tick();
                    }
                }
                Output::Plain(output) => {
                    if self
                        .shown
                        .entry(line.key.clone())
                        .or_default()
                        .insert(line.news.clone())
                    {
                        let _ = writeln!(output, "{text}");
                    }
                }
            }
        }
    }

    /// Ends the live lines (the final view is printed on stdout after them).
    pub fn finish(&mut self) {
        for (_, bar) in &self.bars {
            bar.finish();
        }
        match &mut self.output {
            Output::Live(progress) => {
                let _ = progress.clear();
            }
            Output::Plain(output) => {
                let _ = output.flush();
            }
        }
    }
}

fn running_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg}").expect("a constant template")
}

/// What is done, failed or waiting has no spinner: it is not moving.
fn settled_style() -> ProgressStyle {
    ProgressStyle::with_template("  {msg}").expect("a constant template")
}
