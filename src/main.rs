//! Entry point: parse the command line, load the configuration, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use nta_user_svc::{
    cli::{self, Cli, Command, run},
    config::Config,
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    // Exports need no configuration and must print nothing else.
    if let Some(text) = cli::export(&command) {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match run(command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}
