//! The infrastructure template, checked offline: `infra/check` passes on it and fails, naming
//! the statement, when a role allows an action on `Resource "*"`; the template deploys exactly
//! the functions the crates under `lambdas/` build, every state machine's `${Placeholder}`s are
//! exactly its `DefinitionSubstitutions`, and docs/deploy.md's parameter table lists exactly the
//! template's parameters.
//!
//! The tools live in `.venv` and `.venv-cfripper` (`bin/setup-tools`, which `bin/test` runs).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

fn template_path() -> PathBuf {
    root().join("infra/template.yaml")
}

/// Panics with the fix when a tool `infra/check` or the translation needs is not installed.
fn require_tools() {
    let root = root();
    let missing: Vec<String> = [
        ".venv/bin/python",
        ".venv/bin/cfn-lint",
        ".venv/bin/cfn-guard",
        ".venv-cfripper/bin/cfripper",
    ]
    .iter()
    .filter(|tool| !root.join(tool).is_file())
    .map(|tool| tool.to_string())
    .collect();
    assert!(
        missing.is_empty(),
        "missing {}: run bin/setup-tools (bin/test does) before these tests",
        missing.join(", ")
    );
}

/// A scratch directory under target/infra-checks/, removed when the test passes.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = root()
            .join("target/infra-checks")
            .join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// The real template with its relative paths made absolute, so a copy works from anywhere.
fn template_text() -> String {
    let root = root();
    let text = fs::read_to_string(template_path()).expect("infra/template.yaml is readable");
    text.replace("../state-machines/", &format!("{}/state-machines/", root.display()))
        .replace("CodeUri: ..\n", &format!("CodeUri: {}\n", root.display()))
}

/// Writes `text` as `template.yaml` in the scratch directory and returns its path.
fn write_template(scratch: &Scratch, text: &str) -> PathBuf {
    let path = scratch.path("template.yaml");
    fs::write(&path, text).expect("the template copy is written");
    path
}

/// `text` without the resource `logical_id` (its block, up to the next resource or section).
fn remove_resource(text: &str, logical_id: &str) -> String {
    let header = format!("  {logical_id}:\n");
    let start = text
        .find(&header)
        .unwrap_or_else(|| panic!("the template has no resource {logical_id}"));
    let rest = &text[start + header.len()..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            let line = &rest[i..];
            // The next line indented by exactly two spaces (a resource), or a top-level key.
            (line.starts_with("  ") && !line.starts_with("   ") && !line.starts_with("  #"))
                || (!line.is_empty() && !line.starts_with(' ') && !line.starts_with('#') && !line.starts_with('\n'))
        })
        .unwrap_or(rest.len());
    format!("{}{}", &text[..start], &rest[end..])
}

struct CheckRun {
    success: bool,
    output: String,
}

fn run_infra_check(template: &Path) -> CheckRun {
    require_tools();
    let output = Command::new(root().join("infra/check"))
        .arg("--template")
        .arg(template)
        .current_dir(root())
        .output()
        .expect("infra/check runs");
    CheckRun {
        success: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The template translated to CloudFormation by infra/translate.py.
fn translate(template: &Path, scratch: &Scratch) -> Value {
    require_tools();
    let out = scratch.path("translated.json");
    let output = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("infra/translate.py"))
        .arg("--template")
        .arg(template)
        .arg("--output")
        .arg(&out)
        .current_dir(root())
        .output()
        .expect("infra/translate.py runs");
    assert!(
        output.status.success(),
        "infra/translate.py failed on {}:\n{}{}",
        template.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = fs::read_to_string(&out).expect("the translation was written");
    serde_json::from_str(&text).expect("the translation is JSON")
}

/// `(crate directory, bin name)` of every `[[bin]]` of the crates under lambdas/ (crates with
/// none are libraries).
fn crate_binaries(root: &Path) -> Vec<(String, String)> {
    let mut binaries = Vec::new();
    let mut crates: Vec<PathBuf> = fs::read_dir(root.join("lambdas"))
        .expect("lambdas/ is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .collect();
    crates.sort();
    for dir in crates {
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml is readable");
        let crate_dir = format!("lambdas/{}", dir.file_name().unwrap().to_string_lossy());
        let mut in_bin = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin
                && let Some(value) = line.strip_prefix("name")
                && let Some(name) = value.trim_start().strip_prefix('=')
            {
                binaries.push((crate_dir.clone(), name.trim().trim_matches('"').to_string()));
            }
        }
    }
    binaries
}

fn resources_of_type<'a>(translated: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    translated["Resources"]
        .as_object()
        .expect("the translation has Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .collect()
}

/// A state machine's definition text: SAM writes `Definition` as Fn::Join of its lines.
fn definition_text(definition: &Value) -> String {
    match definition {
        Value::String(text) => text.clone(),
        Value::Object(join) if join.contains_key("Fn::Join") => {
            let parts = &join["Fn::Join"];
            let separator = parts[0].as_str().unwrap_or("");
            parts[1]
                .as_array()
                .map(|lines| lines.iter().map(definition_text).collect::<Vec<_>>().join(separator))
                .unwrap_or_default()
        }
        other => other.to_string(),
    }
}

fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                found.insert(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    found
}

/// Everything inconsistent between a translated template, the crates under `root`/lambdas
/// and the state machine definitions: one message per problem, naming it.
fn consistency_problems(root: &Path, translated: &Value) -> Vec<String> {
    let mut problems = Vec::new();

    let mut deployed = BTreeSet::new();
    for (logical_id, function) in resources_of_type(translated, "AWS::Lambda::Function") {
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str();
        let name = function["Properties"]["FunctionName"]["Fn::Sub"]
            .as_str()
            .and_then(|name| name.strip_prefix("${NamePrefix}"));
        match (binary, name) {
            (Some(binary), Some(name)) if binary == name => {
                deployed.insert(binary.to_string());
            }
            (binary, name) => problems.push(format!(
                "function {logical_id}: its Binary metadata ({binary:?}) and its FunctionName without \
                 ${{NamePrefix}} ({name:?}) must be the same [[bin]] name"
            )),
        }
    }
    let built = crate_binaries(root);
    let built_names: BTreeSet<&str> = built.iter().map(|(_, name)| name.as_str()).collect();
    for (crate_dir, name) in &built {
        if !deployed.contains(name) {
            problems.push(format!(
                "crate {crate_dir} builds [[bin]] {name}, which the template deploys as no function"
            ));
        }
    }
    for name in &deployed {
        if !built_names.contains(name.as_str()) {
            problems.push(format!(
                "the template deploys function {name}, but no crate under lambdas/ has a [[bin]] named {name}"
            ));
        }
    }

    for (logical_id, machine) in resources_of_type(translated, "AWS::StepFunctions::StateMachine") {
        let properties = &machine["Properties"];
        let used = placeholders(&definition_text(&properties["DefinitionString"]));
        let defined: BTreeSet<String> = properties["DefinitionSubstitutions"]
            .as_object()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default();
        for name in used.difference(&defined) {
            problems.push(format!(
                "state machine {logical_id}: its definition uses ${{{name}}}, which its DefinitionSubstitutions do not define"
            ));
        }
        for name in defined.difference(&used) {
            problems.push(format!(
                "state machine {logical_id}: DefinitionSubstitutions defines {name}, which its definition does not use"
            ));
        }
    }
    problems
}

#[test]
fn the_template_passes_every_offline_check() {
    let run = run_infra_check(&template_path());
    assert!(
        run.success,
        "infra/check failed on infra/template.yaml:\n{}",
        run.output
    );
    assert!(run.output.contains("passed every check"), "{}", run.output);
}

#[test]
fn an_action_on_every_resource_fails_the_check_naming_the_statement() {
    let scratch = Scratch::new("wildcard-resource");
    let logs_statement = "                Resource: !GetAtt GetBuildVersionFunctionLogGroup.Arn\n";
    let text = template_text();
    assert_eq!(
        text.matches(logs_statement).count(),
        1,
        "the statement to extend is in the template"
    );
    let bad = text.replace(
        logs_statement,
        &format!(
            "{logs_statement}              - Sid: WriteAnywhere\n                Effect: Allow\n                \
             Action: s3:PutObject\n                Resource: \"*\"\n"
        ),
    );
    let run = run_infra_check(&write_template(&scratch, &bad));
    assert!(
        !run.success,
        "infra/check passed a role allowing s3:PutObject on \"*\":\n{}",
        run.output
    );
    let guard_finding = run
        .output
        .lines()
        .find(|line| line.contains("wildcard_resource_only_for_actions_without_resource_permissions"))
        .unwrap_or_else(|| panic!("no cfn-guard finding about the wildcard resource:\n{}", run.output));
    for expected in ["GetBuildVersionFunctionRole", "WriteAnywhere", "s3:PutObject"] {
        assert!(
            guard_finding.contains(expected),
            "the finding does not name {expected}: {guard_finding}"
        );
    }
    assert!(
        run.output.contains("WildcardResourceRule") && run.output.contains("FAIL cfripper"),
        "cfripper did not report the wildcard resource:\n{}",
        run.output
    );
}

#[test]
fn the_template_deploys_every_crate_and_fills_every_placeholder() {
    let scratch = Scratch::new("consistency");
    let translated = translate(&template_path(), &scratch);
    let problems = consistency_problems(&root(), &translated);
    assert!(problems.is_empty(), "infra/template.yaml:\n{}", problems.join("\n"));
    assert_eq!(
        resources_of_type(&translated, "AWS::StepFunctions::StateMachine").len(),
        4
    );
}

#[test]
fn a_crate_without_its_function_is_named() {
    let scratch = Scratch::new("missing-function");
    let text = remove_resource(&template_text(), "ShiftVersionFunction");
    assert!(!text.contains("  ShiftVersionFunction:\n"));
    let translated = translate(&write_template(&scratch, &text), &scratch);
    let problems = consistency_problems(&root(), &translated);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("crate lambdas/shift-version") && p.contains("shift-version")),
        "no problem names the crate lambdas/shift-version: {problems:#?}"
    );
}

#[test]
fn a_function_without_its_crate_is_named() {
    let scratch = Scratch::new("missing-crate");
    // A workspace like this one but without lambdas/start-nightly.
    for (crate_dir, _) in crate_binaries(&root()) {
        if crate_dir != "lambdas/start-nightly" {
            let manifest = root().join(&crate_dir).join("Cargo.toml");
            let copy = scratch.path(&crate_dir);
            fs::create_dir_all(&copy).expect("the crate directory is created");
            fs::copy(&manifest, copy.join("Cargo.toml")).expect("the manifest is copied");
        }
    }
    let translated = translate(&template_path(), &scratch);
    let problems = consistency_problems(&scratch.0, &translated);
    assert_eq!(
        problems,
        [
            "the template deploys function hhvm-start-nightly, but no crate under lambdas/ has a [[bin]] named \
          hhvm-start-nightly"
        ],
    );
}

#[test]
fn a_placeholder_without_its_substitution_is_named() {
    let scratch = Scratch::new("dangling-placeholder");
    let definition_path = root().join("state-machines/hhvm-build-and-publish.asl.json");
    let definition = fs::read_to_string(&definition_path).expect("the definition is readable");
    let used = "\"${StartSingleBuildFunctionArn}\"";
    assert!(definition.contains(used), "the definition starts single builds");
    let copy = scratch.path("hhvm-build-and-publish.asl.json");
    fs::write(&copy, definition.replacen(used, "\"${NoSuchFunctionArn}\"", 1)).expect("the copy is written");
    let text = template_text().replace(&definition_path.display().to_string(), &copy.display().to_string());
    assert!(
        text.contains(&copy.display().to_string()),
        "the template copy points at the definition copy"
    );
    let translated = translate(&write_template(&scratch, &text), &scratch);
    let problems = consistency_problems(&root(), &translated);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("BuildAndPublishStateMachine") && p.contains("${NoSuchFunctionArn}")),
        "no problem names ${{NoSuchFunctionArn}}: {problems:#?}"
    );
}

/// Parameter names in the template's `Parameters:` section (two-space-indented keys).
fn template_parameters(text: &str) -> BTreeSet<String> {
    let section = text
        .split_once("\nParameters:\n")
        .map(|(_, rest)| rest)
        .expect("the template has Parameters");
    section
        .lines()
        .take_while(|line| line.is_empty() || line.starts_with(' ') || line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("  "))
        .filter(|line| !line.starts_with(' ') && !line.starts_with('#'))
        .filter_map(|line| line.strip_suffix(':'))
        .map(str::to_string)
        .collect()
}

/// The first-column names of the table under `## Parameters` in docs/deploy.md.
fn documented_parameters(doc: &str) -> BTreeSet<String> {
    let section = doc
        .split_once("\n## Parameters\n")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
        .expect("docs/deploy.md has a ## Parameters section");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| cell.split_once('`').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn the_parameter_table_lists_exactly_the_template_parameters() {
    let parameters = template_parameters(&fs::read_to_string(template_path()).expect("the template is readable"));
    assert!(
        parameters.contains("NamePrefix") && parameters.len() > 30,
        "{parameters:?}"
    );
    let doc = fs::read_to_string(root().join("docs/deploy.md")).expect("docs/deploy.md is readable");
    let documented = documented_parameters(&doc);
    let undocumented: Vec<_> = parameters.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&parameters).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/deploy.md's parameter table: missing {undocumented:?}; not in the template {unknown:?}"
    );
}

#[test]
fn removing_a_resource_keeps_the_rest_of_the_template() {
    let text = "Resources:\n  A:\n    Type: X\n    # note\n  B:\n    Type: Y\nOutputs:\n  C:\n    Value: 1\n";
    assert_eq!(
        remove_resource(text, "A"),
        "Resources:\n  B:\n    Type: Y\nOutputs:\n  C:\n    Value: 1\n"
    );
    assert_eq!(
        remove_resource(text, "B"),
        "Resources:\n  A:\n    Type: X\n    # note\nOutputs:\n  C:\n    Value: 1\n"
    );
}

// ---------------------------------------------------------------------------------------------
// README.md's tables against the code: the table of Lambdas names exactly the template's
// functions, and the table of error types exactly the errorTypes of pipeline-core.
// ---------------------------------------------------------------------------------------------

fn readme() -> String {
    fs::read_to_string(root().join("README.md")).expect("README.md is readable")
}

/// The first cells of the first Markdown table under the heading line `heading` (before the
/// next heading), header and separator rows left out.
fn first_cells_of_table_under(doc: &str, heading: &str) -> Vec<String> {
    let mut lines = doc
        .lines()
        .skip_while(|line| line.trim_end() != heading)
        .skip(1)
        .skip_while(|line| !line.starts_with('|') && !line.starts_with('#'))
        .peekable();
    assert!(
        lines.peek().is_some_and(|line| line.starts_with('|')),
        "no table under the heading {heading:?}"
    );
    let rows: Vec<&str> = lines.take_while(|line| line.starts_with('|')).collect();
    assert!(
        rows.len() > 2 && rows[1].starts_with("|---"),
        "the table under {heading:?} has no header and rows: {rows:?}"
    );
    rows[2..]
        .iter()
        .map(|row| row.split('|').nth(1).unwrap_or("").trim().to_string())
        .collect()
}

/// The `code spans` of a Markdown cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// Every function name the template deploys, without the stack's `${NamePrefix}`: the
/// `FunctionName` of each `AWS::Serverless::Function`. A `FunctionName` that refers to a
/// function (`!Ref`, `!GetAtt`) names none.
fn template_function_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for value in text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("FunctionName:"))
        .map(str::trim)
    {
        if let Some(name) = value.strip_prefix("!Sub ${NamePrefix}") {
            names.insert(name.trim().to_string());
        } else {
            assert!(
                value.starts_with("!Ref ") || value.starts_with("!GetAtt "),
                "a FunctionName of the template is neither `!Sub ${{NamePrefix}}<name>` nor a reference: {value}"
            );
        }
    }
    let functions = text.matches("Type: AWS::Serverless::Function\n").count();
    assert_eq!(
        names.len(),
        functions,
        "the template has {functions} functions but these names: {names:?}"
    );
    names
}

/// The names `PipelineError::error_type` returns: its `=> "Name"` arms.
fn error_types_of(source: &str) -> BTreeSet<String> {
    let body = source
        .split_once("fn error_type(")
        .map(|(_, rest)| rest.split("\n    }\n").next().unwrap_or(rest))
        .expect("error.rs has fn error_type");
    body.split("=> \"")
        .skip(1)
        .filter_map(|arm| arm.split_once('"').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn the_readme_table_of_lambdas_names_exactly_the_template_functions() {
    let deployed = template_function_names(&fs::read_to_string(template_path()).expect("the template is readable"));
    assert!(
        deployed.contains("hhvm-start-nightly") && deployed.len() >= 18,
        "{deployed:?}"
    );
    let mut documented = BTreeSet::new();
    for cell in first_cells_of_table_under(&readme(), "## The Lambdas") {
        let names = code_spans(&cell);
        assert_eq!(
            names.len(),
            1,
            "a row of README.md's table of Lambdas names one function: {cell:?}"
        );
        documented.extend(names);
    }
    let undocumented: Vec<_> = deployed.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&deployed).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "README.md's table of Lambdas: missing the template's {undocumented:?}; not in the template {unknown:?}"
    );
}

#[test]
fn the_readme_table_of_error_types_lists_exactly_the_error_types() {
    let source = fs::read_to_string(root().join("lambdas/pipeline-core/src/error.rs")).expect("error.rs is readable");
    let defined = error_types_of(&source);
    assert!(
        defined.contains("SourceUnavailable") && defined.contains("ConfigurationError"),
        "{defined:?}"
    );
    let documented: BTreeSet<String> = first_cells_of_table_under(&readme(), "### Error types")
        .iter()
        .flat_map(|cell| code_spans(cell))
        .collect();
    let undocumented: Vec<_> = defined.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&defined).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "README.md's table of error types: missing {undocumented:?} (errorTypes of \
         lambdas/pipeline-core/src/error.rs); not errorTypes there {unknown:?}"
    );
}

#[test]
fn the_readme_parsers_read_only_what_they_are_pointed_at() {
    let doc = "# T\n\n## A\n\ntext\n\n| name | what |\n|---|---|\n| `x` / `y` | 1 |\n| `z` | `not` |\n\n\
               | `other` | table |\n\n## B\n\n| n |\n|---|\n| `b` |\n";
    let cells = first_cells_of_table_under(doc, "## A");
    assert_eq!(cells, ["`x` / `y`", "`z`"]);
    assert_eq!(code_spans(&cells[0]), ["x", "y"]);
    assert_eq!(first_cells_of_table_under(doc, "## B"), ["`b`"]);
    let without_table = std::panic::catch_unwind(|| first_cells_of_table_under("## A\ntext\n## B\n| `b` |\n", "## A"));
    assert!(
        without_table.is_err(),
        "a table under the next heading was taken for ## A's"
    );

    let source = "impl E {\n    pub fn error_type(&self) -> &'static str {\n        match self {\n            \
                  E::A { .. } => \"Alpha\",\n            E::B => \"Beta\",\n        }\n    }\n\n    \
                  fn other(&self) -> &str {\n        match self { _ => \"NotAnErrorType\" }\n    }\n}\n";
    assert_eq!(
        error_types_of(source),
        ["Alpha", "Beta"].map(String::from).into_iter().collect()
    );
    let template = "  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      FunctionName: !Sub ${NamePrefix}hhvm-f\n  \
                    P:\n    Type: AWS::Lambda::Permission\n    Properties:\n      FunctionName: !Ref F\n";
    assert_eq!(
        template_function_names(template),
        ["hhvm-f".to_string()].into_iter().collect()
    );
}
