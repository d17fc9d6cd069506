//! Tracing, set up once per process: JSON lines in Lambda (CloudWatch Logs Insights can query
//! them), readable text everywhere else. `LOG_FORMAT=json|text` overrides the choice and
//! `RUST_LOG` (or Lambda's `AWS_LAMBDA_LOG_LEVEL`) sets the level, `info` by default.

use tracing_subscriber::EnvFilter;

pub fn init_tracing() {
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => in_lambda,
    };
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .map(|l| l.to_lowercase())
        .unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A second call (tests set tracing up per test) keeps the first subscriber.
    let _ = if json {
        // Lambda stamps every line itself; the JSON keeps its own time for local reading.
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init()
    };
}
