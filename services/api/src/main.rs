use spine_api::config::ApiArgs;
use spine_core::config::parse_or_exit;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: ApiArgs = parse_or_exit();
    if let Err(e) = args.pg_config() {
        // Settings that contradict each other: one line, like a bad value.
        eprintln!("spine-api: {e}");
        return std::process::ExitCode::from(2);
    }
    spine_core::telemetry::init(&args.log);
    let shutdown = spine_core::shutdown::on_signal();
    match spine_api::run(args, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "spine-api failed");
            std::process::ExitCode::FAILURE
        }
    }
}
