//! One SQL text for both backends: statements are written with SQLite's `?` placeholders and
//! rewritten once per statement to PostgreSQL's `$1, $2, ...`.

/// Rewrites `?` placeholders to `$n`. The statements of this crate hold no `?` inside string
/// literals or identifiers, but quoted text is skipped anyway so the rewrite stays honest.
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0u32;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    out.push(c);
                }
                '?' => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                }
                _ => out.push(c),
            },
        }
    }
    out
}

/// `sql!(backend, "SELECT ... WHERE id = ?")`: the statement for `backend`, as `&'static str`.
/// The text is a `&'static str` expression (a literal or a `concat!` of literals).
/// The PostgreSQL form is computed on first use and kept for the life of the process.
macro_rules! sql {
    ($backend:expr, $text:expr) => {{
        static POSTGRES: ::std::sync::OnceLock<String> = ::std::sync::OnceLock::new();
        match $backend {
            $crate::Backend::Sqlite => $text,
            $crate::Backend::Postgres => POSTGRES
                .get_or_init(|| $crate::sql::to_postgres($text))
                .as_str(),
        }
    }};
}
pub(crate) use sql;

/// `stmt!("UPDATE ... WHERE id = ?")`: the statement in `?` form and in PostgreSQL's form, both
/// `&'static str` (the PostgreSQL form computed on first use), for code that composes
/// statements ([`crate::writes::Single`]).
macro_rules! stmt {
    ($text:expr) => {{
        static POSTGRES: ::std::sync::OnceLock<String> = ::std::sync::OnceLock::new();
        (
            $text,
            POSTGRES
                .get_or_init(|| $crate::sql::to_postgres($text))
                .as_str(),
        )
    }};
}
pub(crate) use stmt;

#[cfg(test)]
mod tests {
    use super::to_postgres;

    #[test]
    fn rewrites_placeholders_in_order() {
        assert_eq!(
            to_postgres("UPDATE t SET a = ?, b = ? WHERE id = ? AND c = 'x?'"),
            "UPDATE t SET a = $1, b = $2 WHERE id = $3 AND c = 'x?'"
        );
        assert_eq!(to_postgres("SELECT 1"), "SELECT 1");
    }
}
