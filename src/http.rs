//! The binary's HTTP endpoints (the catcher's API, metrics and health) start the same way.

use std::net::SocketAddr;

/// Binds `addr`, serves `app` on the current runtime for as long as the process runs, and
/// returns the bound address (port 0 picks one). `what` names the endpoint in messages.
pub async fn serve(addr: SocketAddr, app: axum::Router, what: &str) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for {what}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr} for {what}: {e}"))?;
    let what = what.to_owned();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    Ok(bound)
}
