//! The domain of the HHVM package pipeline, free of AWS types so that it builds and tests in
//! seconds: versions and packaging branches, where artifacts live, the pass-through payload
//! every Lambda speaks, and the one error type whose `errorType` names state machines match.

pub mod approval;
pub mod distro;
pub mod error;
pub mod executions;
pub mod instance;
pub mod launch;
pub mod layout;
pub mod marker;
pub mod payload;
pub mod polling;
pub mod s3;
pub mod userdata;
pub mod version;

pub use distro::Distro;
pub use error::PipelineError;
pub use instance::{InstanceId, InstanceState};
pub use payload::Payload;
pub use s3::{BucketName, ObjectKey, S3Location};
pub use version::{PackagingBranch, Version};
