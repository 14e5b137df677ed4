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
