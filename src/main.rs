//! Entry point: parse the command line, load the configuration, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use nta_user_svc::{
    cli::{self, Cli, Command, run},
    config::Config,
    telemetry,
};

fn main() -> ExitCode {
    // Before the runtime starts its threads: nothing else allocates yet.
    tune_allocator();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve_or_run())
}

async fn serve_or_run() -> ExitCode {
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

/// Hands buffers of 128 KiB and more straight back to the kernel when they are freed.
///
/// glibc serves such buffers from `mmap` at first, but raises that threshold each time one
/// is freed, after which they come from its per-thread arenas and stay in the process. Our
/// big buffers come in bursts (request bodies read ahead by hyper, decoded photos), so the
/// adaptive threshold left peak RSS at about 60 MB after an upload burst instead of 35 MB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    const MMAP_THRESHOLD: i32 = 128 * 1024;
    // SAFETY: mallopt takes no pointers and only sets a malloc parameter. It is called from
    // `main` before the runtime (or anything else) starts a thread, so no allocation on
    // another thread can race it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
