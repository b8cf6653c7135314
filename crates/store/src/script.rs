//! Statements as data (SQL text and its values), so that a caller can send them one
//! at a time or, to SQLite, several in one round trip.
//!
//! Every sqlx SQLite query is a round trip to its connection's thread; on a loaded
//! machine each hand-off can cost milliseconds of scheduling, so a transaction of
//! seven statements pays seven times. SQLite's prepared-statement interface takes a
//! string of several statements; sqlx's SQLite driver runs them all and reports each
//! one's result. That behaviour sits behind a deprecated sqlx method (`fetch_many`,
//! deprecated because no other database supports it; sqlx#3108): it is confined to
//! [`Script::run`], used for SQLite only, and `script_reports_each_statement` fails
//! if an sqlx upgrade changes it.

use crate::Result;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;
use std::borrow::Cow;

/// A value bound to a placeholder.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bytes(Vec<u8>),
}

/// One SQL statement with placeholders `$1..$n` and its `n` values, in order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Statement {
    pub sql: Cow<'static, str>,
    pub values: Vec<Value>,
}

impl Statement {
    pub fn new(sql: impl Into<Cow<'static, str>>, values: Vec<Value>) -> Self {
        Statement {
            sql: sql.into(),
            values,
        }
    }

    /// Run it alone; the number of rows it changed.
    pub async fn execute(&self, conn: &mut sqlx::AnyConnection) -> Result<u64> {
        Ok(bind_all(sqlx::query(&self.sql), &self.values)
            .execute(conn)
            .await?
            .rows_affected())
    }
}

fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    values: &'q [Value],
) -> Query<'q, Any, AnyArguments<'q>> {
    for v in values {
        q = match v {
            Value::Text(s) => q.bind(s.as_str()),
            Value::OptText(s) => q.bind(s.as_deref()),
            Value::Int(i) => q.bind(*i),
            Value::OptInt(i) => q.bind(*i),
            Value::Bytes(b) => q.bind(b.as_slice()),
        };
    }
    q
}

/// Several statements sent to SQLite as one string, their placeholders renumbered
/// into one list of values.
#[derive(Debug, Default)]
pub(crate) struct Script {
    sql: String,
    values: Vec<Value>,
    statements: usize,
}

impl Script {
    /// Append a statement; returns its position among the script's statements.
    pub fn push(&mut self, st: Statement) -> usize {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        renumber(&st.sql, self.values.len(), &mut self.sql);
        self.values.extend(st.values);
        self.statements += 1;
        self.statements - 1
    }

    /// Append a statement that fails, stopping the script, unless the statement
    /// before it changed exactly `rows` rows. SQLite has no `RAISE` outside
    /// triggers; `abs()` of the smallest integer is an "integer overflow" error, and
    /// a `CASE` evaluates only the branch it takes.
    pub fn push_check(&mut self, rows: u64) -> usize {
        self.push(Statement::new(
            format!(
                "SELECT CASE WHEN changes() = {rows} THEN 0 ELSE abs(-9223372036854775808) END"
            ),
            Vec::new(),
        ))
    }

    pub fn statements(&self) -> usize {
        self.statements
    }

    #[cfg(test)]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Values bound so far (SQLite allows at most 32 766 per statement string).
    pub fn params(&self) -> usize {
        self.values.len()
    }

    /// Run every statement, in order, in one round trip (SQLite only). Stops at the
    /// first error, leaving the earlier statements done: begin a transaction in it (or
    /// around it) and roll back on error, unless the `COMMIT` had already run (see
    /// [`Ran`]).
    pub async fn run(&self, conn: &mut sqlx::AnyConnection) -> Ran {
        use futures_core::Stream;
        let mut changed = Vec::with_capacity(self.statements);
        #[allow(deprecated)] // see the module documentation
        let mut results = bind_all(sqlx::query(&self.sql), &self.values).fetch_many(conn);
        while let Some(item) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut results).poll_next(cx)).await
        {
            match item {
                Ok(sqlx::Either::Left(done)) => changed.push(done.rows_affected()),
                Ok(sqlx::Either::Right(_row)) => {}
                Err(e) => {
                    return Ran {
                        changed,
                        error: Some(e.into()),
                    }
                }
            }
        }
        let error = (changed.len() != self.statements).then(|| {
            crate::StoreError::Conflict(format!(
                "script of {} statements reported {}",
                self.statements,
                changed.len()
            ))
        });
        Ran { changed, error }
    }
}

/// What a script did.
#[derive(Debug)]
pub(crate) struct Ran {
    /// The rows changed by each statement whose result arrived, in order: if the
    /// last statement's arrived, the whole script ran, whatever `error` says.
    pub changed: Vec<u64>,
    /// What stopped the script or went wrong reading its results.
    pub error: Option<crate::StoreError>,
}

impl Ran {
    #[cfg(test)]
    pub fn into_result(self) -> Result<Vec<u64>> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.changed),
        }
    }
}

/// Append `sql` to `out` with each placeholder `$k` written as `$(k + offset)`. The
/// statements here never hold a `$` inside a string literal.
fn renumber(sql: &str, offset: usize, out: &mut String) {
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(k) => out.push_str(&(k + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_past_earlier_values() {
        let mut out = String::new();
        renumber("UPDATE t SET a = $1 WHERE b = $2 AND c < $1", 10, &mut out);
        assert_eq!(out, "UPDATE t SET a = $11 WHERE b = $12 AND c < $11");
        let mut out = String::new();
        renumber("SELECT 1", 3, &mut out);
        assert_eq!(out, "SELECT 1");
        let mut out = String::new();
        renumber("x $ y $9", 1, &mut out);
        assert_eq!(out, "x $ y $10");
    }

    #[tokio::test]
    async fn script_reports_each_statement() {
        let (store, _dir) = crate::testing::sqlite().await.expect("sqlite");
        let mut conn = store.pool().acquire().await.expect("connection");
        sqlx::query("CREATE TABLE s (k INTEGER PRIMARY KEY, v TEXT, o TEXT)")
            .execute(&mut *conn)
            .await
            .expect("table");
        let mut script = Script::default();
        for (k, v) in [(1, "a"), (2, "b")] {
            script.push(Statement::new(
                "INSERT INTO s (k, v, o) VALUES ($1, $2, $3)",
                vec![Value::Int(k), Value::Text(v.into()), Value::OptText(None)],
            ));
        }
        script.push(Statement::new(
            "UPDATE s SET v = $1 WHERE k >= $2",
            vec![Value::Text("z".into()), Value::Int(1)],
        ));
        script.push(Statement::new(
            "INSERT INTO s (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING",
            vec![Value::Int(1), Value::Text("dup".into())],
        ));
        assert_eq!(script.params(), 10);
        assert_eq!(
            script.run(&mut conn).await.into_result().expect("run"),
            vec![1, 1, 2, 0]
        );
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT k, v FROM s ORDER BY k")
            .fetch_all(&mut *conn)
            .await
            .expect("rows");
        assert_eq!(rows, vec![(1, "z".to_owned()), (2, "z".to_owned())]);
        // An error stops the script with the error, not a partial success.
        let mut bad = Script::default();
        bad.push(Statement::new(
            "INSERT INTO s (k, v) VALUES ($1, $2)",
            vec![Value::Int(3), Value::Text("c".into())],
        ));
        bad.push(Statement::new(
            "INSERT INTO s (k, v) VALUES ($1, $2)",
            vec![Value::Int(1), Value::Text("taken".into())],
        ));
        assert!(bad.run(&mut conn).await.into_result().is_err());
    }

    #[tokio::test]
    async fn a_check_stops_the_script_unless_the_statement_before_changed_that_many_rows() {
        let (store, _dir) = crate::testing::sqlite().await.expect("sqlite");
        let mut conn = store.pool().acquire().await.expect("connection");
        sqlx::query("CREATE TABLE c (k INTEGER PRIMARY KEY, v TEXT)")
            .execute(&mut *conn)
            .await
            .expect("table");
        let script = |k: i64, expect: u64, after: i64| {
            let mut s = Script::default();
            s.push(Statement::new("BEGIN IMMEDIATE", Vec::new()));
            s.push(Statement::new(
                "INSERT INTO c (k, v) VALUES ($1, 'x') ON CONFLICT (k) DO NOTHING",
                vec![Value::Int(k)],
            ));
            s.push_check(expect);
            s.push(Statement::new(
                "INSERT INTO c (k, v) VALUES ($1, 'after')",
                vec![Value::Int(after)],
            ));
            s.push(Statement::new("COMMIT", Vec::new()));
            s
        };
        let held = script(1, 1, 101)
            .run(&mut conn)
            .await
            .into_result()
            .expect("check holds");
        assert_eq!(held.len(), 5);
        assert_eq!((held[1], held[3]), (1, 1));
        // Key 1 exists: the insert changes nothing, the check fails, nothing after it
        // runs and the transaction is left open for the caller to roll back.
        let stopped = script(1, 1, 102).run(&mut conn).await;
        // BEGIN and the insert answered (a statement that is not an INSERT, UPDATE or
        // DELETE reports the count of the one before it), nothing after.
        assert_eq!(stopped.changed.len(), 2, "{stopped:?}");
        assert_eq!(stopped.changed[1], 0);
        assert!(
            format!("{:?}", stopped.error).contains("integer overflow"),
            "{stopped:?}"
        );
        sqlx::query("ROLLBACK")
            .execute(&mut *conn)
            .await
            .expect("the transaction was still open");
        let keys: Vec<(i64,)> = sqlx::query_as("SELECT k FROM c ORDER BY k")
            .fetch_all(&mut *conn)
            .await
            .expect("rows");
        assert_eq!(keys, vec![(1,), (101,)]);
        // A check for zero rows holds when nothing changed.
        assert!(script(1, 0, 103).run(&mut conn).await.error.is_none());
        let after: Vec<(i64,)> = sqlx::query_as("SELECT k FROM c WHERE k > 100 ORDER BY k")
            .fetch_all(&mut *conn)
            .await
            .expect("rows");
        assert_eq!(after, vec![(101,), (103,)]);
    }
}
