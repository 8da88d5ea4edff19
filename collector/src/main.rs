//! `sonde`: the node agent and its command-line client.

mod agent;
mod auth;
mod capture;
mod cli;
mod client;
mod clock;
mod conntrack;
mod counters;
mod dns_session;
mod http_session;
mod k8s_meta;
mod mysql_session;
mod probes;
mod reassembly;
mod redis_session;
mod rows;
mod session;
mod stream_driver;
mod window;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_filter = match &cli.command {
        Command::Agent(args) => args.log.clone(),
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
            Command::Agent(args) => agent::run(args).await,
            Command::Query(args) => client::query(&args.server, &args.sql, args.format).await,
            Command::Tables(args) => client::tables(&args).await,
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
