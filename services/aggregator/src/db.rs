//! What every part of the PostgreSQL edge shares: the store's error type and the shape of a
//! migration. It imports nothing of the crate, so the sources (which write inside the flush
//! transaction) and the store (which runs it) both build on it.

/// `(version, name, sql)`. Never edit an applied file: add a new one.
pub type Migration = (i32, &'static str, &'static str);

/// Errors of the store. `Fenced` is not an outage: another instance owns the data now.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("offsets moved under us (partition reassigned): batch discarded")]
    Fenced,
    #[error("postgres: {}", chain(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("postgres pool: {}", chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("postgres: no answer within {0:?}: the attempt was cancelled")]
    TimedOut(std::time::Duration),
    #[error("cancelled")]
    Cancelled,
}

/// SQLSTATE classes whose errors are about the data a statement carried, so that retrying the
/// same statement fails the same way: 22 data exception (a numeric overflow, a NUL byte, a
/// value out of range), 23 integrity constraint violation, 54 program limit exceeded (e.g. an
/// index row too large for a long text).
const DATA_CLASSES: [&str; 3] = ["22", "23", "54"];

impl StoreError {
    /// The SQLSTATE when PostgreSQL refused the statement for its data (see [`DATA_CLASSES`]).
    pub fn data_refusal(&self) -> Option<&str> {
        let Self::Db(err) = self else {
            return None;
        };
        if self.missing_partition() {
            return None;
        }
        let code = err.code()?.code();
        DATA_CLASSES
            .iter()
            .any(|class| code.starts_with(class))
            .then_some(code)
    }

    /// A row whose time has no partition (23514, as a CHECK violation): not the data's fault
    /// when maintenance or another instance dropped or has not made it yet.
    pub fn missing_partition(&self) -> bool {
        let Self::Db(err) = self else {
            return false;
        };
        (err.as_db_error()).is_some_and(|e| {
            e.code().code() == "23514" && e.message().starts_with("no partition of relation")
        })
    }

    /// A short name of the cause, the same for every repeat of one failure: the SQLSTATE, or
    /// the kind of failure.
    pub fn cause(&self) -> String {
        match self {
            Self::Fenced => "fenced".into(),
            Self::Db(err) => match err.code() {
                Some(code) => format!("SQLSTATE {}", code.code()),
                None if err.is_closed() => "connection closed".into(),
                None => chain(err),
            },
            Self::Pool(deadpool_postgres::PoolError::Timeout(kind)) => {
                format!("pool timeout ({kind:?})")
            }
            Self::Pool(err) => chain(err),
            Self::TimedOut(_) => "deadline".into(),
            Self::Cancelled => "cancelled".into(),
        }
    }
}

/// `err` and each of its sources not already in the text: tokio-postgres and deadpool keep
/// the reason in the source ("error performing TLS handshake" alone does not say that the
/// certificate failed verification, nor why).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("inner reason")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("outer: inner reason")]
    struct SaysItAlready(#[source] Inner);

    #[test]
    fn each_source_is_said_once() {
        assert_eq!(chain(&Outer(Inner)), "outer: inner reason");
        assert_eq!(chain(&SaysItAlready(Inner)), "outer: inner reason");
    }
}
