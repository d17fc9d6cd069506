//! What every Lambda of the pipeline shares at run time: configuration read once from the
//! environment, AWS clients built the standard way (so `AWS_ENDPOINT_URL` points them all at
//! an emulator), tracing, the Lambda runtime wiring, and the AWS calls themselves — each a
//! small function taking its SDK client, so the domain logic stays in `pipeline-core`.

pub mod clients;
pub mod cloudfront;
pub mod config;
pub mod ec2;
pub mod errors;
pub mod events;
pub mod function;
pub mod launch;
pub mod launch_config;
pub mod packaging;
pub mod runtime;
pub mod s3;
pub mod sfn;
pub mod single_worker;
pub mod telemetry;

pub use aws_config::SdkConfig;
pub use clients::{ec2_client, load_sdk_config, s3_client};
pub use errors::service_error;
pub use function::{Function, serve};
pub use runtime::run;
pub use telemetry::init_tracing;
