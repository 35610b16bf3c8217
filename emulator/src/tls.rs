//! The connection loop (plain HTTP and HTTPS: rustls, ring provider), one task per connection.

use axum::Router;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Response extension: [`serve`] closes the connection instead of sending this response (the
/// `drop` fault; see `routes::dropped`). Defined here, by the loop that acts on it, so this module
/// does not depend on the routes.
#[derive(Clone, Copy, Debug)]
pub struct DropConnection;

/// Loads a PEM certificate chain and private key (PKCS#8, PKCS#1 or SEC1) into an acceptor
/// for HTTP/1.1.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    with_alpn(cert, key, b"http/1.1")
}

/// The same for gRPC (the Pub/Sub API), which needs HTTP/2 negotiated by ALPN.
pub fn h2_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    with_alpn(cert, key, b"h2")
}

fn with_alpn(cert: &Path, key: &Path, alpn: &[u8]) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("--tls-cert {}: no CERTIFICATE in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts connections (TLS when `acceptor` is given) until `shutdown` resolves; each
/// connection is served (HTTP/1.1, keep-alive) on its own task, so a slow handshake never blocks
/// the others. A response marked [`DropConnection`] (the `drop` fault) is never written: the
/// service fails, and hyper closes the connection.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    acceptor: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    // EMFILE and friends: back off briefly, as axum::serve does.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut app = app.clone();
                async move {
                    // Read the whole request before answering. A handler that ignores the body
                    // (admin POSTs, a GET with a body) would leave bytes unread in the socket;
                    // if hyper then closes the connection the kernel resets it, and the client
                    // can lose the response it is reading.
                    let (mut parts, body) = req.into_parts();
                    collapse_slashes(&mut parts.uri);
                    let body = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX).await.map_err(std::io::Error::other)?;
                    let req = hyper::Request::from_parts(parts, axum::body::Body::from(body));
                    let resp = match tower_service::Service::call(&mut app, req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                    if resp.extensions().get::<DropConnection>().is_some() {
                        return Err(std::io::Error::other("drop fault: connection closed without a response"));
                    }
                    Ok(resp)
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            // Salesforce answers HTTP/1.1 with canonical header names (`Content-Type`,
            // `Sforce-Locator`); some clients read them into case-sensitive maps.
            http.title_case_headers(true);
            match acceptor {
                Some(acceptor) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(MixedCase(stream)), svc).await;
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(MixedCase(tcp)), svc).await;
                }
            }
        });
    }
}

/// Salesforce serves `//services/data/...` as `/services/data/...`; some clients (the `sf` CLI
/// with an instance URL ending in `/`) send such paths.
fn collapse_slashes(uri: &mut hyper::Uri) {
    let path = uri.path();
    if !path.contains("//") {
        return;
    }
    let mut fixed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && fixed.ends_with('/')) {
            fixed.push(c);
        }
    }
    if let Some(q) = uri.query() {
        fixed.push('?');
        fixed.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = fixed.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(u) = hyper::Uri::from_parts(parts) {
            *uri = u;
        }
    }
}

/// hyper's title case writes `Sforce-Numberofrecords`; Salesforce sends `Sforce-NumberOfRecords`.
/// hyper offers no public way to give one name its own case, so the head is fixed on its way to
/// the socket. The replacement has the same length, so byte counts are unchanged; a head split
/// across two writes keeps the title case (still a valid name).
struct MixedCase<S>(S);

const TITLE: &[u8] = b"\r\nSforce-Numberofrecords: ";
const MIXED: &[u8] = b"\r\nSforce-NumberOfRecords: ";

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for MixedCase<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for MixedCase<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        // A body of hundreds of megabytes passes here too: memchr's search, not a window per byte.
        match memchr::memmem::find(buf, TITLE) {
            Some(at) => {
                let mut fixed = buf.to_vec();
                fixed[at..at + MIXED.len()].copy_from_slice(MIXED);
                std::pin::Pin::new(&mut self.0).poll_write(cx, &fixed)
            }
            None => std::pin::Pin::new(&mut self.0).poll_write(cx, buf),
        }
    }
    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
