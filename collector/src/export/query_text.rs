//! `db.query.text` and `db.operation.name` for database spans. Query text
//! leaves the node with its literal values replaced by `?` (the semantic
//! conventions' sanitization): literals are where passwords, e-mail
//! addresses and other personal data sit.

/// Longest `db.query.text` exported, in bytes (cut on a character boundary).
const MAX_QUERY_TEXT: usize = 2048;

/// SQL with string, number, hex and blob literals replaced by `?`.
/// Identifiers (`t1`, `` `col2` ``) and keywords are kept.
pub fn sanitize_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len().min(MAX_QUERY_TEXT));
    let mut chars = sql.char_indices().peekable();
    let mut prev_ident = false;
    while let Some((_, c)) = chars.next() {
        if out.len() >= MAX_QUERY_TEXT {
            break;
        }
        match c {
            '\'' | '"' => {
                // A quoted string; a doubled quote or a backslash escapes.
                while let Some((_, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        if chars.peek().map(|&(_, n)| n) == Some(c) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
                prev_ident = false;
            }
            '`' => {
                // A quoted identifier: kept.
                out.push(c);
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == '`' {
                        break;
                    }
                }
                prev_ident = true;
            }
            c if c.is_ascii_digit() && !prev_ident => {
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '.' {
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push('?');
                prev_ident = false;
            }
            c => {
                out.push(c);
                prev_ident = c.is_alphanumeric() || c == '_' || c == '$';
            }
        }
    }
    out
}

/// The statement's leading keyword, upper case (`SELECT`, `INSERT`...), when
/// it is a plain word; None for empty or odd text.
pub fn sql_operation(sql: &str) -> Option<String> {
    let word: String = sql
        .trim_start()
        .trim_start_matches('(')
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .take(32)
        .collect();
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
}

/// A Redis command as `db.query.text`: the command, its first argument (the
/// key, for most commands) and `?` for every further argument.
pub fn redis_query_text(command: &str, args: &[String]) -> String {
    let mut out = String::from(command);
    for (index, arg) in args.iter().enumerate() {
        if out.len() >= MAX_QUERY_TEXT {
            break;
        }
        out.push(' ');
        if index == 0 && !arg.is_empty() && !arg.starts_with('<') {
            out.extend(arg.chars().take(128));
        } else {
            out.push('?');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literals_become_question_marks() {
        let cases = [
            (
                "SELECT * FROM users WHERE email = 'a@b.c' AND id = 42",
                "SELECT * FROM users WHERE email = ? AND id = ?",
            ),
            (
                "INSERT INTO t1 (c2, `col 3`) VALUES (1.5, 'it''s', \"x\\\"y\", 0xFF)",
                "INSERT INTO t1 (c2, `col 3`) VALUES (?, ?, ?, ?)",
            ),
            ("select 1", "select ?"),
            ("SELECT * FROM t2 LIMIT 10", "SELECT * FROM t2 LIMIT ?"),
            ("UPDATE t SET v='unterminated", "UPDATE t SET v=?"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_sql(input), want, "{input}");
        }
    }

    #[test]
    fn long_text_is_cut() {
        let long = "SELECT ".to_string() + &"a, ".repeat(2000);
        assert!(sanitize_sql(&long).len() <= MAX_QUERY_TEXT + 4);
        let _ = sanitize_sql("é'ü\\");
    }

    #[test]
    fn operations() {
        assert_eq!(
            sql_operation("  select * from t").as_deref(),
            Some("SELECT")
        );
        assert_eq!(sql_operation("(SELECT 1)").as_deref(), Some("SELECT"));
        assert_eq!(sql_operation("1+1"), None);
        assert_eq!(sql_operation(""), None);
    }

    #[test]
    fn redis_text() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            redis_query_text("SET", &args(&["k1", "secret"])),
            "SET k1 ?"
        );
        assert_eq!(redis_query_text("PING", &[]), "PING");
        assert_eq!(redis_query_text("AUTH", &args(&["<redacted>"])), "AUTH ?");
    }
}
