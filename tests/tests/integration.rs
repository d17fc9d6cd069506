//! The workspace's cross-crate tests, in one binary: each file below was a test binary of its
//! own, and each of those linked the whole SDK again. One binary links it once, and its tests
//! run side by side under one harness (the local-stack scenarios a few at a time: a stack waits
//! for its turn in `LocalStack::start`).

mod aws_cli;
mod deploy_template;
mod hostile_inputs;
mod infra_checks;
mod lambda_service;
mod local_worker;
mod operator_cli;
mod pipeline_end_to_end;
mod publish_repositories;
mod run_local;
mod userdata_scripts;
