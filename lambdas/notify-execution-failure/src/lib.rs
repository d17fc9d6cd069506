//! `hhvm-notify-execution-failure`: the target of the EventBridge rule on "Step Functions
//! Execution Status Change" (FAILED, TIMED_OUT, ABORTED) of the pipeline's machines. Publishes
//! one message to the notification topic (`NOTIFICATION_TOPIC_ARN`) naming the machine, the
//! execution, the version(s) from the execution's input, the status and the cause, with a link
//! to the execution in the console.
//!
//! Not pass-through: the event is EventBridge's; the answer is the message and its SNS ID.

use pipeline_aws::config::Source;
use pipeline_aws::events::read_execution_end;
use pipeline_aws::{Function, SdkConfig};
use pipeline_core::PipelineError;
use serde_json::{Value, json};

pub use pipeline_aws::events::ExecutionStatusChange;

/// A message for the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// At most 100 characters, as SNS requires for email subjects.
    pub subject: String,
    pub message: String,
}

/// The name of a machine from its ARN (`…:stateMachine:hhvm-build` → `hhvm-build`).
fn machine_name(arn: &str) -> &str {
    arn.rsplit_once(":stateMachine:").map_or(arn, |(_, name)| name)
}

/// What the execution was for: its input's `version`, or `versions`, as given.
pub fn versions_of(input: Option<&str>) -> String {
    let input: Option<Value> = input.and_then(|text| serde_json::from_str(text).ok());
    let input = input.as_ref();
    match (
        input.and_then(|i| i.get("version")),
        input.and_then(|i| i.get("versions")),
    ) {
        (Some(Value::String(version)), _) if !version.is_empty() => version.clone(),
        (_, Some(Value::Array(versions))) if !versions.is_empty() => versions
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "today's nightly (no version in the input)".to_string(),
    }
}

/// Why it ended, in words, when Step Functions gives no cause.
fn cause_of(change: &ExecutionStatusChange) -> String {
    match (change.error.as_deref(), change.cause.as_deref(), change.status.as_str()) {
        (Some(error), Some(cause), _) => format!("{error}: {cause}"),
        (Some(error), None, _) => error.to_string(),
        (None, Some(cause), _) => cause.to_string(),
        (None, None, "TIMED_OUT") => "the execution ran longer than its machine's TimeoutSeconds".to_string(),
        (None, None, "ABORTED") => "the execution was stopped (StopExecution)".to_string(),
        (None, None, status) => format!("the execution ended {status} without an error"),
    }
}

/// The message for one status change: pure.
pub fn notification(change: &ExecutionStatusChange, region: &str) -> Notification {
    let machine = machine_name(&change.state_machine_arn);
    let versions = versions_of(change.input.as_deref());
    let mut subject = format!("{machine} {}: {versions}", change.status);
    if subject.chars().count() > 100 {
        subject = subject.chars().take(99).collect::<String>() + "…";
    }
    let console = format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{}",
        change.execution_arn
    );
    let message = format!(
        "{machine} {status}\n\nmachine:   {machine}\nexecution: {name}\nversion:   {versions}\nstatus:    {status}\ncause:     {cause}\n\n{console}\n",
        status = change.status,
        name = change.name,
        cause = cause_of(change),
    );
    Notification { subject, message }
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NOTIFICATION_TOPIC_ARN`.
    pub topic_arn: String,
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Config, PipelineError> {
        let topic_arn: String = pipeline_aws::config::required(source, "NOTIFICATION_TOPIC_ARN", "an SNS topic ARN")?;
        if !topic_arn.starts_with("arn:") || !topic_arn.contains(":sns:") {
            return Err(PipelineError::configuration(
                "NOTIFICATION_TOPIC_ARN",
                format!("{topic_arn:?} is not an SNS topic ARN"),
            ));
        }
        Ok(Config { topic_arn })
    }
}

/// The deployed function.
pub struct NotifyExecutionFailure {
    sns: aws_sdk_sns::Client,
    config: Config,
    region: String,
}

impl NotifyExecutionFailure {
    pub fn with_client(sns: aws_sdk_sns::Client, config: Config, region: &str) -> NotifyExecutionFailure {
        NotifyExecutionFailure {
            sns,
            config,
            region: region.to_string(),
        }
    }
}

impl Function for NotifyExecutionFailure {
    const NAME: &'static str = "hhvm-notify-execution-failure";
    type Config = Config;

    fn configuration(source: &impl Source) -> Result<Config, PipelineError> {
        Config::from_source(source)
    }

    fn new(config: Config, sdk_config: &SdkConfig) -> Self {
        let region = sdk_config.region().map_or("us-east-1", |r| r.as_ref()).to_string();
        NotifyExecutionFailure::with_client(aws_sdk_sns::Client::new(sdk_config), config, &region)
    }

    async fn handle(&self, event: Value) -> Result<Value, PipelineError> {
        let change = read_execution_end(event)?;
        let notification = notification(&change, &self.region);
        let message_id = publish(&self.sns, &self.config.topic_arn, &notification).await?;
        tracing::info!(execution = %change.execution_arn, %message_id, "notified");
        Ok(json!({"messageId": message_id, "subject": notification.subject, "message": notification.message}))
    }
}

/// Publishes `notification` to `topic_arn`; returns the message ID.
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    notification: &Notification,
) -> Result<String, PipelineError> {
    let output = sns
        .publish()
        .topic_arn(topic_arn)
        .subject(&notification.subject)
        .message(&notification.message)
        .send()
        .await
        .map_err(|error| pipeline_aws::service_error("SNS Publish", error))?;
    Ok(output.message_id().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(status: &str, input: Option<&str>, error: Option<&str>, cause: Option<&str>) -> ExecutionStatusChange {
        ExecutionStatusChange {
            execution_arn: "arn:aws:states:us-east-1:1:execution:hhvm-build:nightly-2026-12-01".into(),
            state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:hhvm-build".into(),
            name: "nightly-2026-12-01".into(),
            status: status.into(),
            input: input.map(str::to_string),
            error: error.map(str::to_string),
            cause: cause.map(str::to_string),
        }
    }

    #[test]
    fn the_message_names_machine_version_and_cause() {
        let failed = change(
            "FAILED",
            Some(r#"{"version":"4.168.2"}"#),
            Some("BuildFailed"),
            Some("debian-12-bookworm has no marker"),
        );
        let n = notification(&failed, "us-east-1");
        assert_eq!(n.subject, "hhvm-build FAILED: 4.168.2");
        assert!(n.message.contains("machine:   hhvm-build"), "{}", n.message);
        assert!(n.message.contains("version:   4.168.2"), "{}", n.message);
        assert!(
            n.message
                .contains("cause:     BuildFailed: debian-12-bookworm has no marker"),
            "{}",
            n.message
        );
        assert!(
            n.message
                .contains("region=us-east-1#/v2/executions/details/arn:aws:states:"),
            "{}",
            n.message
        );
    }

    #[test]
    fn timeouts_aborts_and_several_versions_are_described() {
        let n = notification(
            &change("TIMED_OUT", Some(r#"{"versions":["4.168.2","4.167.5"]}"#), None, None),
            "eu-west-1",
        );
        assert_eq!(n.subject, "hhvm-build TIMED_OUT: 4.168.2, 4.167.5");
        assert!(n.message.contains("TimeoutSeconds"), "{}", n.message);
        let n = notification(&change("ABORTED", Some("not json"), None, None), "eu-west-1");
        assert!(
            n.subject.ends_with("today's nightly (no version in the input)"),
            "{}",
            n.subject
        );
        assert!(n.message.contains("StopExecution"), "{}", n.message);
    }

    #[test]
    fn subjects_stay_within_the_sns_limit() {
        let long = format!(r#"{{"versions":[{}]}}"#, vec!["\"4.168.2\""; 40].join(","));
        let n = notification(&change("FAILED", Some(&long), None, None), "us-east-1");
        assert!(n.subject.chars().count() <= 100, "{}", n.subject);
    }
}
