//! `sonde agent --config FILE`: a TOML file whose keys are the agent's flag
//! names (`store-budget-mib = 512`, `otlp-endpoint = "http://c:4317"`,
//! lists for repeatable flags). Precedence: command line, then environment
//! variables, then the file, then defaults.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// Parses `argv` like `Cli::parse_from`, then fills the agent's flags that
/// were left to their defaults from the `--config` file, if one is given.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, clap::Error> {
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(argv.clone())?;
    let Some(("agent", agent)) = matches.subcommand() else {
        return Cli::from_arg_matches(&matches);
    };
    let Some(path) = agent.get_one::<std::path::PathBuf>("config") else {
        return Cli::from_arg_matches(&matches);
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        command.error(
            clap::error::ErrorKind::Io,
            format!("cannot read the config file {}: {e}", path.display()),
        )
    })?;
    let agent_command = command
        .find_subcommand("agent")
        .expect("the agent subcommand exists")
        .clone();
    let extra = file_args(&text, &agent_command, |id| {
        matches!(
            agent.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    })
    .map_err(|message| {
        command.error(
            clap::error::ErrorKind::InvalidValue,
            format!("{}: {message}", path.display()),
        )
    })?;
    let mut full = argv;
    full.extend(extra.into_iter().map(OsString::from));
    Cli::try_parse_from_ext(full)
}

trait TryParseExt: Sized {
    fn try_parse_from_ext(argv: Vec<OsString>) -> Result<Self, clap::Error>;
}

impl TryParseExt for Cli {
    fn try_parse_from_ext(argv: Vec<OsString>) -> Result<Self, clap::Error> {
        let matches = Cli::command().try_get_matches_from(argv)?;
        Cli::from_arg_matches(&matches)
    }
}

/// The file's settings as `--flag=value` arguments, skipping the flags
/// `already_set` (given on the command line or in the environment).
fn file_args(
    text: &str,
    agent: &clap::Command,
    already_set: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut args = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = agent
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
        else {
            return Err(format!(
                "unknown setting `{key}` (settings are the agent's flag names)"
            ));
        };
        if already_set(arg.get_id().as_str()) {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>(),
            other => scalar(other).map(|v| vec![v]),
        }
        .map_err(|e| format!("setting `{key}`: {e}"))?;
        let is_switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        for value in values {
            if is_switch {
                match value.as_str() {
                    "true" => args.push(format!("--{long}")),
                    "false" => {}
                    _ => return Err(format!("setting `{key}` takes true or false")),
                }
            } else {
                args.push(format!("--{long}={value}"));
            }
        }
    }
    Ok(args)
}

fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("unsupported value of type {}", other.type_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn agent_args(argv: &[&str], file: &str) -> Result<crate::cli::AgentArgs, clap::Error> {
        let dir = std::env::temp_dir().join(format!("sonde-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", argv.len()));
        std::fs::write(&path, file).unwrap();
        let mut full: Vec<OsString> = vec!["sonde".into(), "agent".into()];
        full.push("--config".into());
        full.push(path.clone().into());
        full.extend(argv.iter().map(OsString::from));
        let cli = parse(full);
        let _ = std::fs::remove_file(&path);
        match cli?.command {
            Command::Agent(args) => Ok(*args),
            _ => unreachable!("agent"),
        }
    }

    #[test]
    fn file_fills_defaults_and_the_command_line_wins() {
        let file = r#"
            store-budget-mib = 64
            listen = "127.0.0.1:9999"
            otlp_endpoint = "http://collector:4317"
            otlp-protocol = "grpc"
            service-name = ["nginx=frontend", "python3=api"]
            traces-filter = ["http_events: resp_status >= 500"]
            no-default-redaction = true
        "#;
        let args = agent_args(&["--listen", "127.0.0.1:1234"], file).unwrap();
        assert_eq!(args.store_budget_mib, 64);
        assert_eq!(args.listen.to_string(), "127.0.0.1:1234");
        assert_eq!(
            args.export.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(
            args.export.otlp_protocol,
            crate::export::config::OtlpProtocol::Grpc
        );
        assert_eq!(
            args.export.service_names,
            [
                ("nginx".to_string(), "frontend".to_string()),
                ("python3".to_string(), "api".to_string())
            ]
        );
        assert_eq!(
            args.export.traces_filters,
            ["http_events: resp_status >= 500"]
        );
        assert!(args.no_default_redaction);
    }

    #[test]
    fn bad_files_are_usage_errors() {
        let err = agent_args(&[], "nope = 1").unwrap_err();
        assert!(err.to_string().contains("unknown setting `nope`"), "{err}");
        let err = agent_args(&[], "store-budget-mib = 0").unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let err = agent_args(&[], "listen = [").unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        let err = agent_args(&[], "no-default-redaction = 3").unwrap_err();
        assert!(err.to_string().contains("true or false"), "{err}");
    }
}
