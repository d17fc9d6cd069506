//! The stack's state machines and their executions: registering definitions besides the
//! template's (placeholders substituted by the deployed functions' ARNs), starting executions
//! and following them to their end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use serde_json::Value;

use crate::machines;
use crate::{Context, LocalStack, StackError};

/// moto checks no role; machines registered besides the template's name this one.
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/hhvm-local-step-functions";

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct ExecutionOutcome {
    pub arn: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl ExecutionOutcome {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

impl LocalStack {
    /// The `${Name}` substitutions of state machine definitions: every function's ARN
    /// (`GetBuildVersionFunctionArn`, …) and every machine's (`BuildStateMachineArn`, …, of
    /// the machines registered or being registered). See `machines` for the naming rules.
    pub fn substitutions(&self, machine_names: &[String]) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = self
            .deployed
            .functions
            .iter()
            .map(|f| (machines::function_placeholder(&f.name), f.arn.clone()))
            .collect();
        for name in self.machines.keys().chain(machine_names) {
            map.insert(machines::machine_placeholder(name), machines::state_machine_arn(name));
        }
        map
    }

    /// Registers every `*.asl.json` of `dir` (children first) besides the template's machines,
    /// with placeholders substituted by the deployed functions' ARNs; returns machine name →
    /// ARN of the machines it registered. A machine that exists (the template's included) is
    /// updated to the new definition.
    pub async fn register_state_machines(&mut self, dir: &Path) -> Result<BTreeMap<String, String>, StackError> {
        let mut definitions: Vec<(String, String)> = Vec::new();
        let entries = std::fs::read_dir(dir).context(format!("read {}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(StackError(format!("no *.asl.json in {}", dir.display())));
        }
        let mut texts = BTreeMap::new();
        for file in &files {
            let name_of_file = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = machines::machine_name(name_of_file.trim_end_matches(".asl.json"));
            let text = std::fs::read_to_string(file).context(format!("read {}", file.display()))?;
            texts.insert(name.clone(), file.clone());
            definitions.push((name, text));
        }
        let names: Vec<String> = definitions.iter().map(|(n, _)| n.clone()).collect();
        let substitutions = self.substitutions(&names);
        let mut registered = BTreeMap::new();
        for name in machines::creation_order(&definitions)? {
            let file = &texts[&name];
            let text = &definitions
                .iter()
                .find(|(n, _)| n == &name)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            let definition = machines::substitute(&file.display().to_string(), text, &substitutions)?;
            serde_json::from_str::<Value>(&definition)
                .context(format!("{} after substitution is not JSON", file.display()))?;
            let arn = self.create_or_update_machine(&name, &definition).await?;
            if self.verbose {
                eprintln!("local-stack: registered {name} from {}", file.display());
            }
            self.machines.insert(name.clone(), arn.clone());
            registered.insert(name, arn);
        }
        Ok(registered)
    }

    async fn create_or_update_machine(&self, name: &str, definition: &str) -> Result<String, StackError> {
        let sfn = self.sfn();
        let created = sfn
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn(ROLE_ARN)
            .send()
            .await;
        match created {
            Ok(output) => Ok(output.state_machine_arn().to_string()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_state_machine_already_exists()) =>
            {
                let arn = machines::state_machine_arn(name);
                sfn.update_state_machine()
                    .state_machine_arn(&arn)
                    .definition(definition)
                    .send()
                    .await
                    .context(format!("Step Functions UpdateStateMachine {name}"))?;
                Ok(arn)
            }
            Err(error) => Err(error).context(format!("Step Functions CreateStateMachine {name}")),
        }
    }

    /// Starts an execution of `machine` (a name such as `hhvm-build` or `build`, or an ARN);
    /// returns the execution ARN.
    pub async fn start_execution(&self, machine: &str, name: &str, input: &Value) -> Result<String, StackError> {
        let arn = if machine.starts_with("arn:") {
            machine.to_string()
        } else {
            machines::state_machine_arn(&machines::machine_name(machine))
        };
        let output = self
            .sfn()
            .start_execution()
            .state_machine_arn(&arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .context(format!("Step Functions StartExecution of {arn} named {name}"))?;
        Ok(output.execution_arn().to_string())
    }

    /// Follows execution `arn` until it ends, calling `on_event` once for each history event in
    /// order (`describe_event` makes a progress line of one); fails after `timeout`.
    pub async fn wait_for_execution(
        &self,
        arn: &str,
        timeout: Duration,
        mut on_event: impl FnMut(&HistoryEvent),
    ) -> Result<ExecutionOutcome, StackError> {
        let sfn = self.sfn();
        let deadline = Instant::now() + timeout;
        let mut last_seen = 0;
        let mut history_read: Option<Instant> = None;
        loop {
            let described = sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .context(format!("Step Functions DescribeExecution {arn}"))?;
            let finished = *described.status() != ExecutionStatus::Running;
            // History after the status: a finished execution's last events are then all there.
            if finished || history_read.is_none_or(|read| read.elapsed() >= HISTORY_INTERVAL) {
                history_read = Some(Instant::now());
                for event in history_after(&sfn, arn, last_seen).await? {
                    on_event(&event);
                    last_seen = event.id();
                }
            }
            if finished {
                return Ok(ExecutionOutcome {
                    arn: arn.to_string(),
                    status: described.status().as_str().to_string(),
                    output: described.output().and_then(|text| serde_json::from_str(text).ok()),
                    error: described.error().map(str::to_string),
                    cause: described.cause().map(str::to_string),
                });
            }
            if Instant::now() > deadline {
                return Err(self.still_running(arn, timeout));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// How often a follower reads the history of an execution that is still running; its status
/// is read every half second, and a finished execution's history at once. Each read asks only
/// for the events after the last one seen (`history_after`): moto serializes every event of
/// an answer, and a build's history, one poll loop after another, grows for minutes.
pub(crate) const HISTORY_INTERVAL: Duration = Duration::from_secs(3);

/// The events of execution `arn` after event `after` (0: every event), oldest first.
pub(crate) async fn history_after(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    after: i64,
) -> Result<Vec<HistoryEvent>, StackError> {
    pipeline_aws::sfn::history_after(sfn, arn, after)
        .await
        .context(format!("Step Functions GetExecutionHistory {arn}"))
}
