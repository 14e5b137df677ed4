//! Graceful shutdown: SIGINT or SIGTERM cancels one token that every loop `select!`s on. A
//! second signal while the stop is still running (a final flush waiting on an unreachable
//! broker or database) forces the exit: once tokio handles a signal, the default action no
//! longer applies, so without this an operator's second Ctrl-C would do nothing.

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled on the first SIGINT or SIGTERM; the second one exits the process
/// at once with status 128 + the signal's number (130, 143), as the default action would.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut signals = Signals::listen();
        let first = signals.next().await;
        tracing::info!(
            signal = first.name,
            "shutdown signal received (a second one forces the exit)"
        );
        cancel.cancel();
        let second = signals.next().await;
        tracing::warn!(
            signal = second.name,
            "second shutdown signal: exiting without finishing the stop"
        );
        std::process::exit(128 + second.number);
    });
    token
}

#[derive(Debug, Clone, Copy)]
struct Received {
    name: &'static str,
    number: i32,
}

/// SIGINT and SIGTERM, listened to once for the process' life: a signal that arrives between
/// two waits is not lost.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let open = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(err) => {
                    tracing::error!(%err, "cannot listen for {name}");
                    None
                }
            };
            Self {
                interrupt: open(SignalKind::interrupt(), "SIGINT"),
                terminate: open(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) -> Received {
        #[cfg(unix)]
        {
            async fn on(stream: &mut Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = on(&mut self.interrupt) => Received { name: "SIGINT", number: 2 },
                () = on(&mut self.terminate) => Received { name: "SIGTERM", number: 15 },
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Received {
                name: "Ctrl-C",
                number: 2,
            }
        }
    }
}
