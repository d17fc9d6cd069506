use pipeline_aws::config::{self, ProcessEnv};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_aws::init_tracing();
    let buckets = config::buckets(&ProcessEnv)?;
    let buckets = &buckets;
    pipeline_aws::run(move |event| async move { get_build_version::handle(buckets, event) }).await
}
