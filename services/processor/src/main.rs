use spine_core::config::parse_or_exit;
use spine_processor::config::ProcessorArgs;
use spine_processor::gaps::DataLoss;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: ProcessorArgs = parse_or_exit();
    spine_core::telemetry::init(&args.log);
    let shutdown = spine_core::shutdown::on_signal();
    match spine_processor::run(args, shutdown).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<DataLoss>() {
            // One line: what was lost, where, and what to do about it.
            Some(loss) => {
                tracing::error!("{loss}");
                std::process::ExitCode::from(spine_processor::gaps::EXIT_CODE)
            }
            None => {
                tracing::error!(error = format!("{e:#}"), "spine-processor failed");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
