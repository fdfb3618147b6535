//! Raw SQL for the read side (aggregates, boards, reports) written once with `?` placeholders
//! and run on SQLite or PostgreSQL.
use crate::error::Result;
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};

/// Rewrite `?` placeholders to `$1, $2, ...` on PostgreSQL.
pub fn prepare(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut in_str = false;
    for ch in sql.chars() {
        match ch {
            '\'' => {
                in_str = !in_str;
                out.push(ch);
            }
            '?' if !in_str => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(ch),
        }
    }
    out
}

pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, prepare(backend, sql), values)
}

pub async fn all<C: ConnectionTrait>(
    c: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>> {
    Ok(c.query_all_raw(stmt(c.get_database_backend(), sql, values))
        .await?)
}

pub async fn one<C: ConnectionTrait>(
    c: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<QueryResult>> {
    Ok(c.query_one_raw(stmt(c.get_database_backend(), sql, values))
        .await?)
}

pub async fn exec<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> Result<u64> {
    Ok(c.execute_raw(stmt(c.get_database_backend(), sql, values))
        .await?
        .rows_affected())
}

/// The first column of the first row as an integer (0 when there is no row). Aggregates are
/// cast to BIGINT so that PostgreSQL's SUM(bigint) = numeric reads as i64.
pub async fn scalar_i64<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> Result<i64> {
    let sql = format!("SELECT CAST(({sql}) AS BIGINT) AS v");
    Ok(match one(c, &sql, values).await? {
        Some(r) => r.try_get::<Option<i64>>("", "v")?.unwrap_or(0),
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_but_not_inside_strings() {
        assert_eq!(
            prepare(DbBackend::Postgres, "a = ? AND b = '?' AND c = ?"),
            "a = $1 AND b = '?' AND c = $2"
        );
        assert_eq!(prepare(DbBackend::Sqlite, "a = ?"), "a = ?");
    }
}
