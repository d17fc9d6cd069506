//! The pass-through payload.
//!
//! Every Lambda of the pipeline receives the state machine's JSON object and returns it whole,
//! with only its own fields added or changed: whatever it does not know comes back verbatim
//! (nested objects, numbers exactly as written, nulls, field order). Handlers read the fields
//! they need through typed accessors whose errors name the field and what was expected.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::PipelineError;

#[derive(Debug, Clone, PartialEq)]
pub struct Payload(Map<String, Value>);

/// Fields the pipeline's own steps write: the workers and child executions a step started, poll
/// counters, verification results and caught errors. An execution's input may not set them —
/// a step that reads one (cleanup, a poll, the final `Fail`) must only ever see what an earlier
/// step of the same execution wrote — so the first step of every machine refuses them.
pub const RESERVED_FIELDS: &[&str] = &[
    "instances",
    "terminatedInstances",
    "builds",
    "skippedDistros",
    "instanceStates",
    "allInstancesFinished",
    "interruptedInstances",
    "stepFunctionExecutions",
    "stepFunctionExecutionStates",
    "buildExecutionStates",
    "allStepFunctionExecutionsFinished",
    "anyStepFunctionExecutionFailed",
    "failedStepFunctionExecutions",
    "executionFailure",
    "indexPages",
    "poll",
    "error",
    "cleanupError",
    "buildStatus",
    "publishStatus",
    "approval",
];

impl Payload {
    /// Accepts the invocation's JSON; anything but an object is `InvalidInput`.
    pub fn from_value(value: Value) -> Result<Payload, PipelineError> {
        match value {
            Value::Object(fields) => Ok(Payload(fields)),
            other => Err(PipelineError::invalid_input(
                "(payload)",
                format!("expected a JSON object, got {}", json_type(&other)),
            )),
        }
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    /// A field that must be present (and not null), converted to `T`; `expected` completes the
    /// sentence "expected …" in the error.
    pub fn required<T: DeserializeOwned>(&self, field: &str, expected: &str) -> Result<T, PipelineError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Err(PipelineError::invalid_input(
                field,
                format!("missing; expected {expected}"),
            )),
            Some(value) => convert(field, value, expected),
        }
    }

    /// A field that may be absent or null.
    pub fn optional<T: DeserializeOwned>(&self, field: &str, expected: &str) -> Result<Option<T>, PipelineError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => convert(field, value, expected).map(Some),
        }
    }

    /// An optional string field where `""` also means "not given" — the original pipeline's
    /// falsy check, which the nightly schedule and operators' payloads rely on.
    pub fn optional_nonempty_str(&self, field: &str) -> Result<Option<String>, PipelineError> {
        Ok(self
            .optional::<String>(field, "a string")?
            .filter(|value| !value.is_empty()))
    }

    /// A required array whose every element is parsed by `parse`; errors name the element
    /// (`instances[2]`).
    pub fn required_array<T>(
        &self,
        field: &str,
        expected_elements: &str,
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Vec<T>, PipelineError> {
        let expected = format!("an array of {expected_elements}");
        let Some(value) = self.0.get(field).filter(|v| !v.is_null()) else {
            return Err(PipelineError::invalid_input(
                field,
                format!("missing; expected {expected}"),
            ));
        };
        let Value::Array(items) = value else {
            return Err(PipelineError::invalid_input(
                field,
                format!("expected {expected}, got {}", json_type(value)),
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                parse(item).map_err(|problem| PipelineError::invalid_input(format!("{field}[{index}]"), problem))
            })
            .collect()
    }

    /// `InvalidInput` naming the first reserved field the payload sets (`RESERVED_FIELDS`).
    pub fn refuse_reserved_fields(&self) -> Result<(), PipelineError> {
        match RESERVED_FIELDS.iter().find(|field| self.0.contains_key(**field)) {
            Some(field) => Err(PipelineError::invalid_input(
                *field,
                "is written by the pipeline's own steps and may not be set in an execution's input",
            )),
            None => Ok(()),
        }
    }

    /// Adds or replaces one of the handler's own output fields.
    pub fn set(&mut self, field: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).expect("output fields are plain data that always serialize");
        self.0.insert(field.to_string(), value);
    }
}

fn convert<T: DeserializeOwned>(field: &str, value: &Value, expected: &str) -> Result<T, PipelineError> {
    serde_json::from_value(value.clone()).map_err(|error| {
        // serde's message says what was wrong with a nested value; for a plain type mismatch
        // the JSON type of the value is the clearer half of the sentence.
        let problem = if error.is_data() && error.to_string().starts_with("invalid type") {
            format!("expected {expected}, got {}", json_type(value))
        } else {
            format!("expected {expected}: {error}")
        };
        PipelineError::invalid_input(field, problem)
    })
}

/// Reads a string element of an array, for `required_array`.
pub fn string_element(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("expected a string, got {}", json_type(other))),
    }
}

/// "a string", "an array", …: how a JSON value is named in error messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::S3Location;

    #[test]
    fn unknown_fields_come_back_verbatim_in_order() {
        let text = r#"{"z":1,"nested":{"deep":[1,{"x":null}]},"big":12345678901234567890123,"exact":1.50,"nothing":null,"a":"s"}"#;
        let input: Value = serde_json::from_str(text).unwrap();
        let mut payload = Payload::from_value(input).unwrap();
        payload.set("added", "yes");
        let output = serde_json::to_string(&payload.into_value()).unwrap();
        assert_eq!(output, format!("{},\"added\":\"yes\"}}", &text[..text.len() - 1]));
    }

    #[test]
    fn set_replaces_in_place() {
        let mut payload = Payload::from_value(json!({"a": 1, "b": 2})).unwrap();
        payload.set("a", 3);
        assert_eq!(
            serde_json::to_string(&payload.into_value()).unwrap(),
            r#"{"a":3,"b":2}"#
        );
    }

    #[test]
    fn non_objects_are_invalid_input() {
        for value in [json!([1]), json!("text"), json!(null), json!(3)] {
            let error = Payload::from_value(value).unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput");
            assert!(error.to_string().contains("expected a JSON object"), "{error}");
        }
    }

    #[test]
    fn required_fields_name_themselves_when_missing_or_mistyped() {
        let payload = Payload::from_value(json!({"source": "s3://x", "nothing": null})).unwrap();
        let missing = payload
            .required::<S3Location>("absent", "an object {bucket, path}")
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "invalid input field `absent`: missing; expected an object {bucket, path}"
        );
        let null = payload.required::<String>("nothing", "a string").unwrap_err();
        assert!(null.to_string().contains("`nothing`: missing"), "{null}");
        let mistyped = payload
            .required::<S3Location>("source", "an object {bucket, path}")
            .unwrap_err();
        assert_eq!(
            mistyped.to_string(),
            "invalid input field `source`: expected an object {bucket, path}, got a string"
        );
    }

    #[test]
    fn nested_problems_keep_serdes_explanation() {
        let payload = Payload::from_value(json!({"source": {"bucket": "b-1"}})).unwrap();
        let error = payload
            .required::<S3Location>("source", "an object {bucket, path}")
            .unwrap_err();
        assert!(error.to_string().contains("missing field `path`"), "{error}");
    }

    #[test]
    fn empty_strings_count_as_not_given() {
        let payload = Payload::from_value(json!({"a": "", "b": "x", "c": null})).unwrap();
        assert_eq!(payload.optional_nonempty_str("a").unwrap(), None);
        assert_eq!(payload.optional_nonempty_str("b").unwrap(), Some("x".to_string()));
        assert_eq!(payload.optional_nonempty_str("c").unwrap(), None);
        assert_eq!(payload.optional_nonempty_str("d").unwrap(), None);
        assert!(
            Payload::from_value(json!({"a": 5}))
                .unwrap()
                .optional_nonempty_str("a")
                .is_err()
        );
    }

    #[test]
    fn reserved_fields_are_refused_by_name() {
        assert!(
            Payload::from_value(json!({"version": "4.168.2", "executionName": "x"}))
                .unwrap()
                .refuse_reserved_fields()
                .is_ok()
        );
        for field in RESERVED_FIELDS {
            let payload = Payload::from_value(json!({"version": "4.168.2", *field: null})).unwrap();
            let error = payload.refuse_reserved_fields().unwrap_err();
            assert_eq!(error.error_type(), "InvalidInput");
            assert!(error.to_string().contains(&format!("`{field}`")), "{error}");
        }
    }

    #[test]
    fn array_elements_are_named_by_index() {
        let payload = Payload::from_value(json!({"list": ["a", 7], "text": "a"})).unwrap();
        let error = payload.required_array("list", "strings", string_element).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid input field `list[1]`: expected a string, got a number"
        );
        let error = payload.required_array("text", "strings", string_element).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid input field `text`: expected an array of strings, got a string"
        );
        let error = payload.required_array("absent", "strings", string_element).unwrap_err();
        assert!(error.to_string().contains("`absent`: missing"), "{error}");
    }
}
