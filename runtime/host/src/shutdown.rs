//! Turning SIGINT/SIGTERM into a graceful shutdown request; a second signal
//! exits at once.

use tokio_util::sync::CancellationToken;

/// Exit status used when a second signal cuts the graceful shutdown short.
const FORCED_EXIT_STATUS: i32 = 130;

/// Start listening for termination signals; the token is cancelled on the first one.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        cancel.cancel();
        wait_for_signal().await;
        tracing::error!("second signal: exiting without finishing in-flight work (it will be processed again after restart)");
        std::process::exit(FORCED_EXIT_STATUS);
    });
    token
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler works on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
