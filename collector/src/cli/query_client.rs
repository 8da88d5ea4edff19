//! `sonde query` and `sonde tables`: a thin client of the agent's HTTP API.

use anyhow::{Context, bail};
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

use crate::cli::{OutputFormat, QueryArgs, ServerArgs};

fn endpoint(server: &str, format: &str) -> String {
    format!(
        "{}/api/v1/query?format={format}",
        server.trim_end_matches('/')
    )
}

/// An answer's body, and its warnings (nodes that did not answer, with
/// partial results allowed) from the `Sonde-Warning` headers.
struct Answer {
    body: String,
    warnings: Vec<String>,
}

impl Answer {
    /// Prints the warnings on stderr, so they never mix with the rows.
    fn warn(&self) {
        for warning in &self.warnings {
            eprintln!("sonde: warning: {warning}");
        }
    }
}

async fn post_query(
    server: &ServerArgs,
    sql: &str,
    format: &str,
    partial: bool,
) -> anyhow::Result<Answer> {
    let client = reqwest::Client::new();
    let mut request = client
        .post(endpoint(&server.server, format))
        .json(&serde_json::json!({ "sql": sql, "partial": partial }));
    if let Some(token) = &server.token {
        request = request.bearer_auth(token);
    }
    let server = &server.server;
    let response = request.send().await.with_context(|| {
        format!("cannot reach the Sonde agent at {server} (is `sonde agent` running?)")
    })?;
    let status = response.status();
    let warnings = response
        .headers()
        .get_all("sonde-warning")
        .iter()
        .filter_map(|value| value.to_str().ok().map(str::to_owned))
        .collect();
    let body = response
        .text()
        .await
        .context("reading the agent's response")?;
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(body);
        bail!("query failed ({status}): {message}");
    }
    Ok(Answer { body, warnings })
}

pub async fn query(args: &QueryArgs) -> anyhow::Result<()> {
    let (server, sql, partial) = (&args.server, args.sql.as_str(), args.partial);
    match args.format {
        OutputFormat::Csv => {
            let answer = post_query(server, sql, "csv", partial).await?;
            answer.warn();
            print!("{}", answer.body);
        }
        OutputFormat::Json => {
            let answer = post_query(server, sql, "json", partial).await?;
            answer.warn();
            println!("{}", answer.body);
        }
        OutputFormat::Table => {
            let answer = post_query(server, sql, "json", partial).await?;
            answer.warn();
            let body: Value =
                serde_json::from_str(&answer.body).context("the agent returned invalid JSON")?;
            println!("{}", render_table(&body));
            let rows = body
                .get("rows")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let truncated = body
                .get("truncated")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            eprintln!(
                "{rows} row{}{}",
                if rows == 1 { "" } else { "s" },
                if truncated { " (truncated)" } else { "" }
            );
        }
    }
    Ok(())
}

pub async fn tables(server: &ServerArgs) -> anyhow::Result<()> {
    let sql = "SELECT table_name, column_name, data_type FROM information_schema.columns \
               WHERE table_schema = 'public' ORDER BY table_name, ordinal_position";
    let answer = post_query(server, sql, "json", false).await?;
    let body: Value =
        serde_json::from_str(&answer.body).context("the agent returned invalid JSON")?;
    let rows = body
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut current = String::new();
    for row in rows {
        let cell = |i: usize| {
            row.get(i)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (table, column, ty) = (cell(0), cell(1), cell(2));
        if table != current {
            println!("{}{table}", if current.is_empty() { "" } else { "\n" });
            current = table;
        }
        println!("  {column:<16} {ty}");
    }
    Ok(())
}

fn render_table(body: &Value) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    let columns = body
        .get("columns")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    table.set_header(columns.iter().map(|c| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }));
    for row in body
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cells = row.as_array().into_iter().flatten().map(|v| match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        table.add_row(cells);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_in_column_order() {
        let body = serde_json::json!({
            "columns": [{"name": "req_method", "type": "Utf8"}, {"name": "resp_status", "type": "Int64"}],
            "rows": [["GET", 200], [null, 404]]
        });
        let text = render_table(&body).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains("req_method") && lines[1].contains("resp_status"),
            "{text}"
        );
        assert!(
            lines[3].contains("GET") && lines[3].contains("200"),
            "{text}"
        );
        assert!(lines[4].contains("404"), "{text}");
    }

    #[test]
    fn endpoint_tolerates_trailing_slash() {
        assert_eq!(
            endpoint("http://h:1/", "csv"),
            "http://h:1/api/v1/query?format=csv"
        );
    }
}
