//! `sonde`: the node agent, the cluster's coordinator, and the command-line
//! client.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use sonde::cli::{Command, config_file, query_client};
use sonde::{agent, coordinator};

// jemalloc, chosen by measurement (BENCHMARKS.md, 2026-11-30): the capture
// thread allocates each message's head and row while the store frees old
// rows on other threads. glibc's malloc spent 26 % of the agent's CPU
// consolidating and unlinking those chunks, jemalloc spends about 7 %.
// mimalloc was measured slower. jemalloc's settings are built in from
// .cargo/config.toml.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match config_file::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let log_filter = match &cli.command {
        Command::Agent(args) => args.log.clone(),
        Command::Coordinator(args) => args.log.clone(),
        _ => "warn".to_string(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&log_filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("sonde: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Agent(args) => agent::run(*args).await,
            Command::Coordinator(args) => coordinator::run(*args).await,
            Command::Query(args) => query_client::query(&args).await,
            Command::Tables(args) => query_client::tables(&args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sonde: {err:#}");
            ExitCode::FAILURE
        }
    }
}
