use std::process::ExitCode;

use spine_tui::config::{Command, TuiArgs};

#[tokio::main]
async fn main() -> ExitCode {
    let args = TuiArgs::parse_or_exit();
    let result = match &args.command {
        Some(Command::Peek(peek)) => {
            // A plain command: its log (broker trouble) goes to stderr, the records to stdout.
            spine_core::telemetry::init(&args.log);
            spine_tui::peek::peek(peek, &mut std::io::stdout().lock()).map(|_| ())
        }
        None => {
            // The screen belongs to the UI: the log goes to a file.
            let path = args.log_file();
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(file) => {
                    spine_core::telemetry::init_to_file(&args.log, file);
                    spine_tui::run::run(args).await
                }
                Err(e) => Err(anyhow::anyhow!(
                    "cannot open the log file {}: {e} (choose one with --log-file)",
                    path.display()
                )),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spine-tui: {e:#}");
            ExitCode::FAILURE
        }
    }
}
