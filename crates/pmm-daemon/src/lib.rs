//! Process plumbing every binary of the stack shares, so each daemon starts and stops the same
//! way: one log setup (text for a terminal, JSON lines for a collector) and one stop signal.

/// Libraries whose debug and trace events print a connection's request line or URL, which
/// carry an RPC endpoint's API key: held at `info` whatever `RUST_LOG` asks for.
const URL_ECHOING_TARGETS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// Installs the global `tracing` subscriber: `RUST_LOG` filters (default `info`), except the
/// [`URL_ECHOING_TARGETS`]; `json` selects JSON lines, as the systemd units ask for, instead of
/// text.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let filter = URL_ECHOING_TARGETS.iter().fold(filter, |f, target| {
        f.add_directive(
            format!("{target}=info")
                .parse()
                .expect("a target name with a level is a valid directive"),
        )
    });
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
}

/// Resolves on SIGINT (a terminal's Ctrl-C) or SIGTERM (systemd, compose, `kill`), so every
/// daemon gets its graceful shutdown whichever way it is stopped. When SIGTERM cannot be
/// watched, that is logged and Ctrl-C alone stops the process.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(%err, "cannot watch SIGTERM; only Ctrl-C stops this process");
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::warn!(%err, "cannot watch Ctrl-C either");
                std::future::pending::<()>().await;
            }
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stop signal received");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_resolves_the_shutdown_future() {
        // Registering first makes SIGTERM caught for the rest of the process (tokio keeps its
        // handler installed), so no signal below can kill the test binary.
        let _guard = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("watch SIGTERM");
        let waiter = tokio::spawn(shutdown_signal());
        // The task registers its own listener on first poll; signal until it has resolved.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !waiter.is_finished() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "SIGTERM never observed"
            );
            let pid = std::process::id().to_string();
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("run kill");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        waiter.await.expect("shutdown task");
    }
}
