#![recursion_limit = "256"]
//! sf-emulator: a local, faithful Salesforce org over HTTP (REST API subset, OAuth token
//! endpoint, admin surface under `/__emulator/`). See README.md.
//!
//! Entry points: [`serve`] (async, on your runtime) and [`spawn`] (own runtime on a background
//! thread; handy in blocking tests).

pub mod bulk;
pub mod cdc;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decimal;
pub mod errors;
pub mod faults;
pub mod ids;
pub mod jwt;
pub mod out;
pub mod pubsub;
pub mod recalc;
pub mod routes;
pub mod rules;
pub mod schema;
pub mod soql;
pub mod state;
pub mod store;
pub mod tls;
pub mod value;
pub mod write;

pub use config::Config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Builds the schema (default org + optional schema file) and the app state.
pub fn build_state(cfg: Config) -> Result<Arc<state::AppState>, String> {
    let mut schema = schema::standard::default_schema();
    if let Some(path) = &cfg.schema_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        schema::file::apply(&mut schema, &text)?;
    }
    if !cfg.api_version.ends_with(".0") || cfg.api_version.trim_end_matches(".0").parse::<u32>().is_err() {
        return Err(format!("--api-version must look like 62.0, got {}", cfg.api_version));
    }
    let jwt_key = match &cfg.jwt_cert {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(jwt::JwtKey::from_pem(&text).map_err(|e| format!("--jwt-cert {}: {e}", path.display()))?)
        }
        None => None,
    };
    let mut st = state::AppState::new(cfg, schema);
    if let Some(k) = jwt_key {
        st.auth.jwt_key = k;
    }
    Ok(Arc::new(st))
}

/// Binds `cfg.listen` and returns the bound address and the server future (run it to serve;
/// it ends when `shutdown` resolves). The Pub/Sub API is served too; [`serve_all`] also
/// returns its address.
pub async fn serve(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let (addr, _, server) = serve_all(cfg, shutdown).await?;
    Ok((addr, server))
}

/// Binds `cfg.listen` and `cfg.pubsub_listen`; returns both addresses (REST, Pub/Sub) and the
/// future serving both (the Pub/Sub server stops when the REST one does).
pub async fn serve_all(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let st = build_state(cfg.clone()).map_err(std::io::Error::other)?;
    let (acceptor, h2_acceptor) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => {
            (Some(tls::acceptor(c, k).map_err(std::io::Error::other)?), Some(tls::h2_acceptor(c, k).map_err(std::io::Error::other)?))
        }
        (None, None) => (None, None),
        _ => return Err(std::io::Error::other("--tls-cert and --tls-key go together")),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let (ps_listener, ps_addr) = pubsub::bind(cfg.pubsub_listen).await?;
    let pubsub = pubsub::serve(st.clone(), ps_listener, h2_acceptor);
    let app = routes::router(st);
    Ok((addr, ps_addr, async move {
        let grpc = tokio::spawn(async move {
            if let Err(e) = pubsub.await {
                eprintln!("sf-emulator: pubsub: {e}");
            }
        });
        let r = tls::serve(listener, app, acceptor, shutdown).await;
        grpc.abort();
        r
    }))
}

/// A server running on its own runtime thread; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    /// The Pub/Sub API (gRPC) listener.
    pub pubsub_addr: SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn base_url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server on a background thread with a 2-worker runtime.
pub fn spawn(cfg: Config) -> std::io::Result<Running> {
    let tls = cfg.tls_cert.is_some();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new().name("sf-emulator".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = addr_tx.send(Err(e));
                return;
            }
        };
        rt.block_on(async move {
            match serve_all(cfg, std::future::pending()).await {
                Ok((addr, pubsub_addr, server)) => {
                    let _ = addr_tx.send(Ok((addr, pubsub_addr)));
                    // Stop without draining: held (timeout-fault) requests must not block it.
                    tokio::select! {
                        r = server => if let Err(e) = r { eprintln!("sf-emulator: {e}") },
                        _ = stop_rx => {}
                    }
                }
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                }
            }
        });
        // Don't wait for held (timeout-fault) requests on shutdown.
        rt.shutdown_background();
    })?;
    let (addr, pubsub_addr) = addr_rx.recv().map_err(std::io::Error::other)??;
    Ok(Running { addr, pubsub_addr, tls, stop: Some(stop_tx), thread: Some(thread) })
}
