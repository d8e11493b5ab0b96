use spine_core::config::parse_or_exit;
use spine_producer::config::ProducerArgs;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: ProducerArgs = parse_or_exit();
    spine_core::telemetry::init(&args.log);
    let shutdown = spine_core::shutdown::on_signal();
    match spine_producer::run(args, shutdown).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "spine-producer failed");
            std::process::ExitCode::FAILURE
        }
    }
}
