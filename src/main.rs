//! The `fetch-worker` binary: parse the command line, set up logging, run the subcommand.

use anyhow::Context;
use clap::Parser;
use fetch_worker::config::{Cli, CombineArgs, Command, RunArgs, RunConfig};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run(args),
        Command::Combine(args) => combine(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fetch-worker: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = RunConfig::from_args(args).context("configuration")?;
    fetch_worker::telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let _ = config;
        Ok(())
    })
}

/// `fetch-worker combine`: owned by the combine module's author.
fn combine(args: CombineArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("combine is not built yet")
}
