use clap::Parser;
use std::io::Write;

fn main() {
    let cfg = sf_emulator::cli::Args::parse().into_config();
    let scheme = if cfg.tls_cert.is_some() { "https" } else { "http" };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let code = rt.block_on(async move {
        let (addr, pubsub_addr, server) = match sf_emulator::serve_all(cfg, std::future::pending()).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("sf-emulator: {e}");
                return 2;
            }
        };
        // The first stdout line is the contract with launchers: they read the port from it.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {scheme}://{addr}");
        // The second line: the Pub/Sub API's own listener (gRPC; TLS when HTTPS is served).
        let _ = writeln!(out, "pubsub listening on {pubsub_addr}");
        let _ = out.flush();
        drop(out);
        eprintln!("sf-emulator: serving the default org on {scheme}://{addr}");
        // Exit promptly on a signal rather than draining: held requests would delay it.
        tokio::select! {
            r = server => match r {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("sf-emulator: {e}");
                    1
                }
            },
            _ = shutdown_signal() => 0,
        }
    });
    // Held requests (timeout faults) must not delay exit.
    rt.shutdown_background();
    std::process::exit(code);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("sf-emulator: shutting down");
}
