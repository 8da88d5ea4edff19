//! Statements about the connection rather than the data, which drivers
//! send on their own: `SET`, `SHOW`, transaction control, `DISCARD`.
//!
//! They are answered here, per connection, and never reach DataFusion:
//! a `SET` cannot change the engine's configuration (its limits, memory,
//! threads). Values set are kept in the connection's metadata, where
//! `SHOW` and the formatting of results find them. Transactions are
//! accepted as the no-ops they are on read-only data.
//!
//! One setting is Sonde's own: `SET sonde.partial_results = on` lets a
//! query over the cluster answer from the nodes that respond (with a
//! warning naming the others) instead of failing.

use datafusion::sql::sqlparser::ast::{Expr, Set, Statement, Value};

/// The connection setting that allows partial results.
pub(crate) const PARTIAL_RESULTS: &str = "sonde.partial_results";

/// What a session statement does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionCommand {
    /// `SET name = value` (`value` unquoted; `None` for `SET … TO DEFAULT`).
    Set {
        name: String,
        value: Option<String>,
    },
    /// `SHOW name`
    Show {
        name: String,
    },
    Begin,
    Commit,
    Rollback,
    /// Another statement with nothing to do (`DISCARD ALL`, `DEALLOCATE`):
    /// answered with this command tag.
    Ignore(&'static str),
}

impl SessionCommand {
    /// The command, if `statement` is about the session.
    pub(crate) fn of(statement: &Statement) -> Option<SessionCommand> {
        match statement {
            Statement::Set(set) => Some(set_command(set)),
            Statement::ShowVariable { variable } => Some(SessionCommand::Show {
                name: variable
                    .iter()
                    .map(|ident| ident.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" "),
            }),
            Statement::StartTransaction { .. } => Some(SessionCommand::Begin),
            Statement::Commit { .. } => Some(SessionCommand::Commit),
            Statement::Rollback { .. } => Some(SessionCommand::Rollback),
            Statement::Discard { .. } => Some(SessionCommand::Ignore("DISCARD ALL")),
            Statement::Deallocate { .. } => Some(SessionCommand::Ignore("DEALLOCATE")),
            _ => None,
        }
    }
}

fn set_command(set: &Set) -> SessionCommand {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => SessionCommand::Set {
            name: variable.to_string().to_lowercase(),
            value: values.first().and_then(value_text),
        },
        Set::SetTimeZone { value, .. } => SessionCommand::Set {
            name: "timezone".to_owned(),
            value: value_text(value),
        },
        Set::SetNames { charset_name, .. } => SessionCommand::Set {
            name: "client_encoding".to_owned(),
            value: Some(charset_name.value.clone()),
        },
        // SET TRANSACTION, SET ROLE, SET SESSION AUTHORIZATION, ...: no
        // effect on read-only data.
        _ => SessionCommand::Ignore("SET"),
    }
}

/// A value as text: strings unquoted, keywords and numbers as written.
fn value_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        },
        Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case("default") => None,
        other => Some(other.to_string()),
    }
}

/// What `SHOW name` answers when the connection did not set it.
pub(crate) fn default_setting(name: &str) -> Option<&'static str> {
    Some(match name {
        "server_version" => "16.6",
        "server_version_num" => "160006",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" => "on",
        "timezone" | "time zone" => "UTC",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "transaction isolation level"
        | "transaction_isolation"
        | "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "search_path" => "public",
        "integer_datetimes" => "on",
        "max_identifier_length" => "63",
        "lc_collate" | "lc_ctype" => "C",
        "statement_timeout" | "lock_timeout" => "0",
        "extra_float_digits" => "1",
        PARTIAL_RESULTS => "off",
        _ => return None,
    })
}

/// Whether a setting's value means on.
pub(crate) fn is_on(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1"
    )
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn command(sql: &str) -> Option<SessionCommand> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        SessionCommand::of(&statements[0])
    }

    #[test]
    fn session_statements_are_recognised() {
        let set = |name: &str, value: Option<&str>| SessionCommand::Set {
            name: name.into(),
            value: value.map(str::to_owned),
        };
        assert_eq!(
            command("SET sonde.partial_results = on"),
            Some(set(PARTIAL_RESULTS, Some("on")))
        );
        assert_eq!(
            command("SET application_name TO 'psql'"),
            Some(set("application_name", Some("psql")))
        );
        assert_eq!(
            command("SET extra_float_digits = 3"),
            Some(set("extra_float_digits", Some("3")))
        );
        assert_eq!(
            command("SET TIME ZONE 'Europe/Paris'"),
            Some(set("timezone", Some("Europe/Paris")))
        );
        assert_eq!(
            command("SHOW transaction isolation level"),
            Some(SessionCommand::Show {
                name: "transaction isolation level".into()
            })
        );
        assert_eq!(command("BEGIN"), Some(SessionCommand::Begin));
        assert_eq!(
            command("START TRANSACTION READ ONLY"),
            Some(SessionCommand::Begin)
        );
        assert_eq!(command("COMMIT"), Some(SessionCommand::Commit));
        assert_eq!(command("ROLLBACK"), Some(SessionCommand::Rollback));
        assert_eq!(
            command("DISCARD ALL"),
            Some(SessionCommand::Ignore("DISCARD ALL"))
        );
        assert_eq!(command("SELECT 1"), None);
        assert_eq!(command("SHOW TABLES"), None);
        assert_eq!(command("INSERT INTO t VALUES (1)"), None);
    }

    #[test]
    fn settings_have_defaults() {
        assert_eq!(default_setting("server_version"), Some("16.6"));
        assert_eq!(default_setting(PARTIAL_RESULTS), Some("off"));
        assert_eq!(default_setting("no_such_thing"), None);
        assert!(is_on("ON") && is_on("true") && !is_on("off"));
    }
}
