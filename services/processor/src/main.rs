use spine_core::config::parse_or_exit;
use spine_processor::config::ProcessorArgs;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: ProcessorArgs = parse_or_exit();
    spine_core::telemetry::init(&args.log);
    let shutdown = spine_core::shutdown::on_signal();
    match spine_processor::run(args, shutdown).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "spine-processor failed");
            std::process::ExitCode::FAILURE
        }
    }
}
