//! The infrastructure template, checked offline: `infra/check` passes on it and fails, naming
//! the statement, when a role allows an action on `Resource "*"`; the template deploys exactly
//! the functions the crates under `lambdas/` build and the functions' release and arm64 builds
//! build exactly those, every state machine's `${Placeholder}`s are
//! exactly its `DefinitionSubstitutions`, and docs/deploy.md's parameter table lists exactly the
//! template's parameters. Over the state machine definitions themselves: every poll loop fits its
//! machine's time and history limits at the pipeline's poll settings, and every retrier retries
//! only what is worth retrying, with jitter.
//!
//! The tools live in `.venv` and `.venv-cfripper` (`bin/setup-tools`, which `bin/test` runs).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pipeline_core::layout::JobKind;
use pipeline_core::polling::{DEFAULT_POLL_INTERVAL_SECONDS, DEFAULT_POLL_LIMIT, MAX_POLL_LIMIT};
use serde_json::{Map, Value};

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
fn deploy_md_packages_the_functions_as_the_benchmark_does() {
    let doc = fs::read_to_string(root().join("docs/deploy.md")).expect("docs/deploy.md is readable");
    let command = format!("cargo {}", pipeline_tests::arm64_package_build().join(" "));
    assert!(
        doc.lines().any(|line| line == command),
        "docs/deploy.md should package the functions with `{command}` (bin/benchmark measures those zips)"
    );
}

/// `(package, bin targets)` of every workspace member, as `cargo metadata` reads the manifests.
fn workspace_packages() -> Vec<(String, BTreeSet<String>)> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1"])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    packages
        .iter()
        .map(|package| {
            let bins = package["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .filter(|target| {
                    target["kind"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
                })
                .filter_map(|target| target["name"].as_str().map(str::to_string))
                .collect();
            (package["name"].as_str().expect("a package name").to_string(), bins)
        })
        .collect()
}

/// The packages a `cargo` argument list excludes (`--exclude NAME`).
fn excluded_packages<'a>(arguments: &[&'a str]) -> Vec<&'a str> {
    arguments
        .windows(2)
        .filter(|pair| pair[0] == "--exclude")
        .map(|pair| pair[1])
        .collect()
}

#[test]
fn the_function_builds_build_exactly_the_template_functions() {
    let packages = workspace_packages();
    let known: BTreeSet<&str> = packages.iter().map(|(name, _)| name.as_str()).collect();
    let release_build = pipeline_tests::release_build();
    let excluded = excluded_packages(&release_build);
    assert!(!excluded.is_empty(), "the release build excludes no package");
    for name in &excluded {
        assert!(
            known.contains(name),
            "the builds exclude {name}, which is no workspace member"
        );
    }
    assert_eq!(
        excluded_packages(&pipeline_tests::arm64_package_build()),
        excluded,
        "the arm64 packaging and the release build build the same packages"
    );
    let built: BTreeSet<String> = packages
        .iter()
        .filter(|(name, _)| !excluded.contains(&name.as_str()))
        .flat_map(|(_, bins)| bins.iter().cloned())
        .collect();
    let template = fs::read_to_string(template_path()).expect("infra/template.yaml is readable");
    assert_eq!(
        built,
        template_function_names(&template),
        "`cargo {}` builds these binaries; the template deploys these functions",
        release_build.join(" ")
    );
}

#[test]
fn excluded_packages_are_read_from_exclude_arguments_only() {
    assert_eq!(
        excluded_packages(&["build", "--exclude", "a", "--workspace", "--exclude", "b", "c"]),
        ["a", "b"]
    );
    assert!(excluded_packages(&["build", "--release", "--exclude"]).is_empty());
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

// ---------------------------------------------------------------------------------------------
// Poll budgets and retries, over the definitions: a machine's worker poll loops fit its
// TimeoutSeconds at the default poll settings and its history at the largest pollLimit (a loop
// that a task on it starts again counts once per run), a loop outlives the longest worker, a
// parent outlives its children, and the retriers retry transient errors only (with jitter) and
// keep polling through service trouble.
// ---------------------------------------------------------------------------------------------

/// The Lambda a worker poll loop calls, and the one a loop waiting for child executions calls.
/// Both only read, so retrying them long is harmless.
const WORKER_POLL_FUNCTION: &str = "${GetInstancesStateFunctionArn}";
const CHILD_POLL_FUNCTION: &str = "${GetStateMachineExecutionsStateFunctionArn}";

/// Errors no retrier may list: a refused request, bad input and bad versions fail the same way
/// every time, and `States.ALL` would retry those too.
const NEVER_RETRIED: [&str; 4] = ["AwsRequestRefused", "InvalidInput", "InvalidVersion", "States.ALL"];

/// Errors of a Lambda that timed out or crashed: every task is idempotent, so they are retried.
/// A function's time-out reaches Step Functions as `Lambda.Unknown` (no `errorType` in the
/// answer) or as the runtime's `Sandbox.Timedout`.
const LAMBDA_CRASH_ERRORS: [&str; 3] = [
    "Lambda.Unknown",
    "Lambda.ClientExecutionTimeoutException",
    "Sandbox.Timedout",
];

/// A Standard execution's history quota.
const HISTORY_EVENT_LIMIT: u64 = 25_000;
/// One poll: Wait entered and exited (2), the Task entered, scheduled, started, succeeded and
/// exited (5), the Choice entered and exited (2), the counting Pass entered and exited (2).
const HISTORY_EVENTS_PER_POLL: u64 = 11;
/// Room for every state outside the poll loops, their retries included.
const HISTORY_EVENTS_OUTSIDE_POLLS: u64 = 2_000;
/// How much longer than the longest worker's hard timeout a worker loop must keep polling: the
/// instance still has to power off and the poll after that to see it.
const WORKER_SHUTDOWN_MARGIN_SECONDS: u64 = 600;
/// A poll task retries AwsServiceError at least this often before its loop cleans up.
const POLL_TASK_MIN_SERVICE_ERROR_ATTEMPTS: u64 = 10;
/// Machines that run others to their end, one after the other: each must outlive its children.
const PARENT_MACHINES: [(&str, [&str; 2]); 2] = [
    ("hhvm-build-and-publish", ["hhvm-build", "hhvm-publish-release"]),
    ("hhvm-build-and-publish-multi", ["hhvm-build", "hhvm-publish-release"]),
];

/// Tasks on a worker poll loop that start it again from the beginning (its poll count reset), and
/// how often each may do so in one execution: (machine, task, restarts). The definition cannot
/// state that bound; the task's Lambda keeps it. "Rebuild Interrupted Distros On Demand" rebuilds
/// each distro whose spot worker was interrupted once (`plan_rebuilds` in
/// build-binary-packages: an interrupted rebuild fails with BuildFailed, and the worker of a build
/// that stood leaves `instances`, so no poll reports it again), so hhvm-build waits for its
/// builds at most twice.
const LOOP_RESTARTS: [(&str, &str, u64); 1] = [("hhvm-build", "Rebuild Interrupted Distros On Demand", 1)];

/// The poll settings and worker lifetimes the definitions are checked against.
struct PollLimits {
    default_limit: u64,
    default_interval_seconds: u64,
    max_limit: u64,
    longest_worker_minutes: u64,
    /// `LOOP_RESTARTS`.
    loop_restarts: Vec<(&'static str, &'static str, u64)>,
}

impl PollLimits {
    fn of_the_pipeline() -> PollLimits {
        PollLimits {
            default_limit: DEFAULT_POLL_LIMIT,
            default_interval_seconds: DEFAULT_POLL_INTERVAL_SECONDS,
            max_limit: MAX_POLL_LIMIT,
            longest_worker_minutes: JobKind::ALL
                .iter()
                .map(JobKind::hard_timeout_minutes)
                .max()
                .expect("there are job kinds"),
            loop_restarts: LOOP_RESTARTS.to_vec(),
        }
    }
}

/// The definitions under state-machines/, by machine name (`hhvm-build`, …).
fn definitions() -> BTreeMap<String, Value> {
    let dir = root().join("state-machines");
    let mut machines = BTreeMap::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{} is readable: {e}", dir.display())) {
        let path = entry.expect("state-machines/ is listed").path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".asl.json"))
        else {
            continue;
        };
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} is readable: {e}", path.display()));
        let definition = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        machines.insert(name.to_string(), definition);
    }
    machines
}

/// Every `States` map of a definition: the top level's, and those of Parallel branches and Map
/// iterators, whose transitions stay inside them.
fn state_maps(definition: &Value) -> Vec<&Map<String, Value>> {
    let mut maps = Vec::new();
    let Some(states) = definition["States"].as_object() else {
        return maps;
    };
    maps.push(states);
    for state in states.values() {
        for branch in state["Branches"].as_array().into_iter().flatten() {
            maps.extend(state_maps(branch));
        }
        for key in ["Iterator", "ItemProcessor"] {
            maps.extend(state_maps(&state[key]));
        }
    }
    maps
}

/// The states a state may go to next: `Next`, `Default`, each choice's and each catcher's.
fn successors(state: &Value) -> Vec<&str> {
    let mut next: Vec<&str> = ["Next", "Default"]
        .iter()
        .filter_map(|key| state[key].as_str())
        .collect();
    for list in ["Choices", "Catch"] {
        next.extend(
            state[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| item["Next"].as_str()),
        );
    }
    next
}

/// The states reachable from `from` in one step or more.
fn reachable<'a>(states: &'a Map<String, Value>, from: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut pending: Vec<&str> = states.get(from).map(successors).unwrap_or_default();
    while let Some(name) = pending.pop() {
        if let Some((name, state)) = states.get_key_value(name)
            && seen.insert(name.as_str())
        {
            pending.extend(successors(state));
        }
    }
    seen
}

/// The states on a cycle through `task`: its poll loop (empty when it is on none).
fn loop_through<'a>(states: &'a Map<String, Value>, task: &str) -> BTreeSet<&'a str> {
    reachable(states, task)
        .into_iter()
        .filter(|name| reachable(states, name).contains(task))
        .collect()
}

/// Whether a choice rule (or one nested in its `And`, `Or`, `Not`) compares `$.poll.count` with
/// `$.pollLimit`.
fn compares_poll_count_with_limit(rule: &Value) -> bool {
    let compares = rule["Variable"] == "$.poll.count"
        && rule.as_object().is_some_and(|fields| {
            fields
                .iter()
                .any(|(key, value)| key.ends_with("Path") && value == "$.pollLimit")
        });
    compares
        || ["And", "Or"]
            .iter()
            .flat_map(|key| rule[key].as_array().into_iter().flatten())
            .any(compares_poll_count_with_limit)
        || (rule["Not"].is_object() && compares_poll_count_with_limit(&rule["Not"]))
}

/// Whether a state is the Choice that bounds a worker poll loop by `pollLimit`.
fn bounds_worker_polls(state: &Value) -> bool {
    state["Type"] == "Choice"
        && state["Choices"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(compares_poll_count_with_limit))
}

/// A definition's worker poll loops: the Choice states comparing `$.poll.count` with `$.pollLimit`.
fn worker_poll_loops(definition: &Value) -> u64 {
    state_maps(definition)
        .iter()
        .flat_map(|states| states.values())
        .filter(|state| bounds_worker_polls(state))
        .count() as u64
}

/// How many times a definition's worker poll loops run in one execution at most: each loop once,
/// and once more for every restart a task on it may make (`restarts`: (task, bound) of this
/// machine). A task on a loop other than its poll is a restart; one without a bound is a problem
/// (its loop could run any number of times).
fn worker_poll_loop_runs(machine: &str, definition: &Value, restarts: &[(&str, u64)]) -> (u64, Vec<String>) {
    let mut runs = 0;
    let mut problems = Vec::new();
    for states in state_maps(definition) {
        for (name, state) in states {
            if state["Resource"] != WORKER_POLL_FUNCTION {
                continue;
            }
            let members = loop_through(states, name);
            if !members.iter().any(|member| bounds_worker_polls(&states[*member])) {
                continue; // not a bounded loop: reported on its own
            }
            runs += 1;
            for member in members.iter().filter(|member| **member != name.as_str()) {
                if states[*member]["Type"] != "Task" {
                    continue;
                }
                match restarts.iter().find(|(task, _)| task == member) {
                    Some((_, bound)) => runs += bound,
                    None => problems.push(format!(
                        "{machine}: {member}: starts the worker poll loop of {name} again, and nothing bounds                          how often (LOOP_RESTARTS in tests/tests/infra_checks.rs names the tasks that may, and                          how often)"
                    )),
                }
            }
        }
    }
    (runs, problems)
}

fn is_lambda_task(state: &Value) -> bool {
    state["Type"] == "Task"
        && state["Resource"]
            .as_str()
            .is_some_and(|resource| resource.ends_with("FunctionArn}") || resource.contains(":lambda:"))
}

fn lists(retrier: &Value, error: &str) -> bool {
    retrier["ErrorEquals"]
        .as_array()
        .is_some_and(|errors| errors.iter().any(|listed| listed == error))
}

/// Everything in `machines` that breaks a poll budget or a retry rule at `limits`: one message
/// per problem, naming the machine and state.
fn poll_budget_and_retry_problems(machines: &BTreeMap<String, Value>, limits: &PollLimits) -> Vec<String> {
    let mut problems = Vec::new();
    let loop_budget = limits.default_limit * limits.default_interval_seconds;
    let longest_worker = limits.longest_worker_minutes * 60 + WORKER_SHUTDOWN_MARGIN_SECONDS;
    if loop_budget < longest_worker {
        problems.push(format!(
            "a worker poll loop at the defaults (pollLimit {} × {} s = {loop_budget} s) gives up before the \
             longest worker's hard timeout of {} min + {WORKER_SHUTDOWN_MARGIN_SECONDS} s",
            limits.default_limit, limits.default_interval_seconds, limits.longest_worker_minutes
        ));
    }
    let timeout_of = |machine: &str| {
        machines
            .get(machine)
            .and_then(|definition| definition["TimeoutSeconds"].as_u64())
    };

    for (machine, definition) in machines {
        let restarts: Vec<(&str, u64)> = limits
            .loop_restarts
            .iter()
            .filter(|(of, _, _)| of == machine)
            .map(|(_, task, bound)| (*task, *bound))
            .collect();
        let (runs, unbounded) = worker_poll_loop_runs(machine, definition, &restarts);
        problems.extend(unbounded);
        match timeout_of(machine) {
            None => problems.push(format!("{machine}: no TimeoutSeconds")),
            Some(timeout) if runs * loop_budget > timeout => problems.push(format!(
                "{machine}: its {runs} worker poll loop runs at the defaults take {runs} × {loop_budget} s = {} s, \
                 more than its TimeoutSeconds {timeout}",
                runs * loop_budget
            )),
            Some(_) => {}
        }
        let history = runs * limits.max_limit * HISTORY_EVENTS_PER_POLL + HISTORY_EVENTS_OUTSIDE_POLLS;
        if history > HISTORY_EVENT_LIMIT {
            problems.push(format!(
                "{machine}: its {runs} worker poll loop runs at pollLimit {} need {history} history events \
                 ({HISTORY_EVENTS_PER_POLL} a poll, {HISTORY_EVENTS_OUTSIDE_POLLS} for the rest), more than \
                 a Standard execution's {HISTORY_EVENT_LIMIT}",
                limits.max_limit
            ));
        }

        for states in state_maps(definition) {
            for (name, state) in states {
                let retriers = state["Retry"].as_array().map(Vec::as_slice).unwrap_or_default();
                for (index, retrier) in retriers.iter().enumerate() {
                    if retrier["JitterStrategy"] != "FULL" {
                        problems.push(format!("{machine}: {name}: Retry[{index}] has no JitterStrategy FULL"));
                    }
                    for error in NEVER_RETRIED.iter().filter(|error| lists(retrier, error)) {
                        problems.push(format!("{machine}: {name}: Retry[{index}] retries {error}"));
                    }
                }
                if is_lambda_task(state) {
                    for error in LAMBDA_CRASH_ERRORS {
                        if !retriers.iter().any(|retrier| lists(retrier, error)) {
                            problems.push(format!("{machine}: {name}: does not retry {error}"));
                        }
                    }
                }
                let resource = state["Resource"].as_str().unwrap_or_default();
                if resource == WORKER_POLL_FUNCTION || resource == CHILD_POLL_FUNCTION {
                    // ASL's default MaxAttempts is 3.
                    let attempts = retriers
                        .iter()
                        .find(|retrier| lists(retrier, "AwsServiceError"))
                        .map(|retrier| retrier["MaxAttempts"].as_u64().unwrap_or(3));
                    match attempts {
                        None => problems.push(format!("{machine}: {name}: a poll that does not retry AwsServiceError")),
                        Some(attempts) if attempts < POLL_TASK_MIN_SERVICE_ERROR_ATTEMPTS => problems.push(format!(
                            "{machine}: {name}: a poll that retries AwsServiceError only {attempts} times, fewer \
                             than {POLL_TASK_MIN_SERVICE_ERROR_ATTEMPTS}"
                        )),
                        Some(_) => {}
                    }
                }
                if resource == WORKER_POLL_FUNCTION
                    && !loop_through(states, name)
                        .iter()
                        .any(|member| bounds_worker_polls(&states[*member]))
                {
                    problems.push(format!(
                        "{machine}: {name}: its worker poll loop has no Choice comparing $.poll.count with $.pollLimit"
                    ));
                }
                if resource == CHILD_POLL_FUNCTION {
                    for member in loop_through(states, name) {
                        if states[member].to_string().contains("$.pollLimit") {
                            problems.push(format!(
                                "{machine}: {member}: in the loop waiting for child executions ({name}), refers to \
                                 $.pollLimit; the child's own TimeoutSeconds bounds that loop"
                            ));
                        }
                    }
                }
            }
        }
    }

    for (parent, children) in PARENT_MACHINES {
        let needed: Option<u64> = children.iter().map(|child| timeout_of(child)).sum();
        match (timeout_of(parent), needed) {
            (Some(timeout), Some(needed)) if timeout < needed => problems.push(format!(
                "{parent}: TimeoutSeconds {timeout} is shorter than its children's {} together ({needed})",
                children.join(" + ")
            )),
            (Some(_), Some(_)) => {}
            _ => problems.push(format!("{parent} or one of {children:?}: no TimeoutSeconds")),
        }
    }
    problems
}

#[test]
fn poll_budgets_and_retries_hold_over_the_definitions() {
    let machines = definitions();
    assert_eq!(
        machines.keys().collect::<Vec<_>>(),
        [
            "hhvm-build",
            "hhvm-build-and-publish",
            "hhvm-build-and-publish-multi",
            "hhvm-publish-release"
        ]
    );
    // The loops are found: hhvm-build polls its source and build workers, the publish its release
    // source and repository workers; hhvm-build waits for its builds a second time when it
    // rebuilds interrupted distros.
    assert_eq!(worker_poll_loops(&machines["hhvm-build"]), 2);
    assert_eq!(worker_poll_loops(&machines["hhvm-publish-release"]), 2);
    let restarts = [("Rebuild Interrupted Distros On Demand", 1)];
    assert_eq!(
        worker_poll_loop_runs("hhvm-build", &machines["hhvm-build"], &restarts),
        (3, Vec::new())
    );
    assert_eq!(
        worker_poll_loop_runs("hhvm-publish-release", &machines["hhvm-publish-release"], &[]),
        (2, Vec::new())
    );
    let problems = poll_budget_and_retry_problems(&machines, &PollLimits::of_the_pipeline());
    assert!(problems.is_empty(), "state-machines/:\n{}", problems.join("\n"));
}

/// The problems of the definitions with `change` applied, at the pipeline's limits changed by
/// `change_limits`.
fn problems_after(
    change: impl FnOnce(&mut BTreeMap<String, Value>),
    change_limits: impl FnOnce(&mut PollLimits),
) -> Vec<String> {
    let mut machines = definitions();
    change(&mut machines);
    let mut limits = PollLimits::of_the_pipeline();
    change_limits(&mut limits);
    poll_budget_and_retry_problems(&machines, &limits)
}

/// `problems_after`, which must be exactly one problem, containing every one of `expected`.
fn single_problem_after(
    change: impl FnOnce(&mut BTreeMap<String, Value>),
    change_limits: impl FnOnce(&mut PollLimits),
    expected: &[&str],
) {
    let problems = problems_after(change, change_limits);
    assert!(
        problems.len() == 1 && expected.iter().all(|part| problems[0].contains(part)),
        "expected one problem naming {expected:?}, got {problems:#?}"
    );
}

fn state<'a>(machines: &'a mut BTreeMap<String, Value>, machine: &str, name: &str) -> &'a mut Value {
    let state = &mut machines.get_mut(machine).expect("the machine exists")["States"][name];
    assert!(state.is_object(), "{machine} has a state {name:?}");
    state
}

#[test]
fn each_broken_poll_budget_or_retry_rule_is_named() {
    let unchanged = |_: &mut BTreeMap<String, Value>| {};
    let same_limits = |_: &mut PollLimits| {};

    // Two worker loops of 200 × 60 s no longer fit 6 h.
    single_problem_after(
        |m| m.get_mut("hhvm-publish-release").unwrap()["TimeoutSeconds"] = 21600.into(),
        same_limits,
        &[
            "hhvm-publish-release",
            "2 worker poll loop runs",
            "TimeoutSeconds 21600",
        ],
    );
    // hhvm-build's two loops would fit 9 h, but with the rebuild the build loop runs twice.
    single_problem_after(
        |m| m.get_mut("hhvm-build").unwrap()["TimeoutSeconds"] = 32400.into(),
        same_limits,
        &[
            "hhvm-build:",
            "3 worker poll loop runs",
            "36000 s",
            "TimeoutSeconds 32400",
        ],
    );
    // A restart nothing bounds: the build loop could run for ever.
    single_problem_after(
        unchanged,
        |l| l.loop_restarts.clear(),
        &[
            "hhvm-build: Rebuild Interrupted Distros On Demand",
            "Fetch Build Instance States",
            "nothing bounds",
        ],
    );
    // A worker that may live longer than a loop polls.
    single_problem_after(
        unchanged,
        |l| l.longest_worker_minutes = 200,
        &["longest worker", "200 min"],
    );
    // A larger pollLimit cap: the three loop runs of hhvm-build overflow its history (its two
    // loops alone would fit: 17,400 events), the publish's two do not.
    single_problem_after(
        unchanged,
        |l| l.max_limit = 700,
        &["hhvm-build:", "3 worker poll loop runs", "25100 history events"],
    );
    // Larger still: the publish's two loops overflow too.
    let problems = problems_after(unchanged, |l| l.max_limit = 1100);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    for (machine, events) in [("hhvm-build:", "38300"), ("hhvm-publish-release:", "26200")] {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(machine) && p.contains(&format!("{events} history events"))),
            "no history problem for {machine} {problems:#?}"
        );
    }
    // A child that may run longer than its parent waits.
    single_problem_after(
        |m| m.get_mut("hhvm-build").unwrap()["TimeoutSeconds"] = 50000.into(),
        same_limits,
        &["hhvm-build-and-publish:", "hhvm-build + hhvm-publish-release"],
    );
    single_problem_after(
        |m| m.get_mut("hhvm-build-and-publish-multi").unwrap()["TimeoutSeconds"] = 50000.into(),
        same_limits,
        &["hhvm-build-and-publish-multi:", "TimeoutSeconds 50000"],
    );
    // A Lambda that timed out or crashed is not retried.
    for error in LAMBDA_CRASH_ERRORS {
        single_problem_after(
            |m| {
                let errors = &mut state(m, "hhvm-build", "Verify Builds")["Retry"][0]["ErrorEquals"];
                errors.as_array_mut().unwrap().retain(|listed| listed != error);
            },
            same_limits,
            &["hhvm-build: Verify Builds", error],
        );
    }
    // A retrier without jitter.
    single_problem_after(
        |m| {
            let retrier = &mut state(m, "hhvm-publish-release", "Start Repository Update")["Retry"][1];
            retrier.as_object_mut().unwrap().remove("JitterStrategy");
        },
        same_limits,
        &["Start Repository Update", "Retry[1]", "JitterStrategy"],
    );
    // A retrier that retries what never succeeds on a retry.
    for error in NEVER_RETRIED {
        single_problem_after(
            |m| {
                let errors = &mut state(m, "hhvm-build-and-publish-multi", "Start Builds")["Retry"][1]["ErrorEquals"];
                errors.as_array_mut().unwrap().push(error.into());
            },
            same_limits,
            &["hhvm-build-and-publish-multi: Start Builds", "Retry[1]", error],
        );
    }
    // A poll that gives up after three service errors.
    for (machine, poll) in [
        ("hhvm-build", "Fetch Build Instance States"),
        ("hhvm-build-and-publish", "Fetch Publish State"),
    ] {
        single_problem_after(
            |m| state(m, machine, poll)["Retry"][1]["MaxAttempts"] = 3.into(),
            same_limits,
            &[poll, "only 3 times"],
        );
    }
    // A worker loop that polls for ever.
    single_problem_after(
        |m| {
            let rules = &mut state(m, "hhvm-build", "Builds Finished?")["Choices"];
            rules
                .as_array_mut()
                .unwrap()
                .retain(|rule| !compares_poll_count_with_limit(rule));
        },
        same_limits,
        &["hhvm-build: Fetch Build Instance States", "no Choice comparing"],
    );
    // A loop waiting for a child that gives up at pollLimit again.
    single_problem_after(
        |m| {
            let rules = &mut state(m, "hhvm-build-and-publish", "Build Finished?")["Choices"];
            rules.as_array_mut().unwrap().push(serde_json::json!({
                "Variable": "$.poll.count",
                "NumericGreaterThanEqualsPath": "$.pollLimit",
                "Next": "Build Or Publish Failed"
            }));
        },
        same_limits,
        &[
            "hhvm-build-and-publish: Build Finished?",
            "Fetch Build State",
            "$.pollLimit",
        ],
    );
}

#[test]
fn a_poll_loop_is_the_cycle_through_its_task() {
    let definition = serde_json::json!({"States": {
        "Start": {"Type": "Pass", "Next": "Wait"},
        "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Poll"},
        "Poll": {"Type": "Task", "Resource": "${GetInstancesStateFunctionArn}", "Next": "Done?",
                 "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}]},
        "Done?": {"Type": "Choice", "Choices": [
            {"Variable": "$.done", "BooleanEquals": true, "Next": "After"},
            {"Not": {"And": [{"Variable": "$.poll.count", "NumericLessThanPath": "$.pollLimit"}]}, "Next": "Failed"}
        ], "Default": "Wait"},
        "After": {"Type": "Succeed"},
        "Failed": {"Type": "Fail"}
    }});
    let states = definition["States"].as_object().unwrap();
    assert_eq!(
        loop_through(states, "Poll"),
        ["Done?", "Poll", "Wait"].into_iter().collect()
    );
    assert!(loop_through(states, "Start").is_empty());
    assert_eq!(
        worker_poll_loops(&definition),
        1,
        "a comparison nested in Not and And counts"
    );
}

#[test]
fn a_task_on_a_poll_loop_runs_it_again_as_often_as_its_bound_says() {
    let definition = serde_json::json!({"States": {
        "Start": {"Type": "Pass", "Next": "Wait"},
        "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Poll"},
        "Poll": {"Type": "Task", "Resource": "${GetInstancesStateFunctionArn}", "Next": "Done?"},
        "Done?": {"Type": "Choice", "Choices": [
            {"Variable": "$.done", "BooleanEquals": true, "Next": "Redo?"},
            {"Variable": "$.poll.count", "NumericGreaterThanEqualsPath": "$.pollLimit", "Next": "Failed"}
        ], "Default": "Wait"},
        "Redo?": {"Type": "Choice", "Choices": [
            {"Variable": "$.redo[0]", "IsPresent": true, "Next": "Redo"}
        ], "Default": "After"},
        "Redo": {"Type": "Task", "Resource": "${BuildBinaryPackagesFunctionArn}", "Next": "Start"},
        "After": {"Type": "Succeed"},
        "Failed": {"Type": "Fail"}
    }});
    assert_eq!(worker_poll_loops(&definition), 1, "one loop");
    assert_eq!(worker_poll_loop_runs("m", &definition, &[("Redo", 2)]), (3, Vec::new()));
    let (runs, problems) = worker_poll_loop_runs("m", &definition, &[("Other", 2)]);
    assert_eq!(runs, 1);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("m: Redo: starts the worker poll loop of Poll again"),
        "{problems:?}"
    );
}
