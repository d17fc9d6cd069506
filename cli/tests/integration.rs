//! `hhvmctl`'s tests against recorded histories and aws-smithy-mocks, in one binary (one link
//! of the SDK).

mod redrive;
mod status_snapshots;
