//! The one HTTP request the worker makes: a POST over HTTP/1.1, plain or over TLS
//! (hyper on tokio-rustls with the ring provider, one connection per attempt; webhooks
//! are rare enough that pooling buys nothing).
//!
//! https receivers are verified against the bundled Mozilla roots (webpki-roots, so the
//! result does not depend on the host's certificate store) plus the certificates of
//! `--ca-file`, if given.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    /// The TLS handshake failed: the receiver's certificate is not trusted, expired or
    /// for another name, or no common protocol version or cipher suite.
    #[error("tls handshake with {authority}: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request header: {0}")]
    Header(#[from] hyper::http::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The extra CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("--ca-file {path}: {reason}")]
pub struct CaFileError {
    pub path: String,
    pub reason: String,
}

/// The TLS client of https deliveries: the bundled Mozilla roots, plus the PEM
/// certificates of `ca_file` (a private CA, or a receiver's self-signed certificate).
///
/// # Errors
/// `ca_file` cannot be read, holds no certificate, or one of them is not a usable
/// trust anchor.
pub fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, CaFileError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let fail = |reason: String| CaFileError {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail(
                "no PEM certificate (BEGIN CERTIFICATE) in the file".into(),
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| fail(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaFileError {
            path: String::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// POSTs `body` and returns the response status; the whole exchange (connect, TLS
/// handshake, send, response head) is bounded by `timeout`.
///
/// # Errors
/// The URL is unusable, the connection or the TLS handshake fails, or no answer came
/// in time.
pub async fn post(
    tls: &TlsConnector,
    url: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<u16, HttpError> {
    match tokio::time::timeout(timeout, exchange(tls, url, headers, body)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout(timeout)),
    }
}

async fn exchange(
    tls: &TlsConnector,
    url: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<u16, HttpError> {
    let bad = |reason: &str| HttpError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("the scheme is not http or https")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
    // An IPv6 literal is bracketed in the URL, not in the socket address or TLS name.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|source| HttpError::Connect {
            authority: authority.to_string(),
            source,
        })?;
    if !https {
        return send(stream, &uri, &authority, headers, body).await;
    }
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| bad(&format!("not a TLS server name: {e}")))?;
    let stream = tls
        .connect(name, stream)
        .await
        .map_err(|source| HttpError::Tls {
            authority: authority.to_string(),
            source,
        })?;
    send(stream, &uri, &authority, headers, body).await
}

/// The request on an open connection (TCP or TLS).
async fn send<S>(
    stream: S,
    uri: &Uri,
    authority: &hyper::http::uri::Authority,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<u16, HttpError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection is driven beside the request and ends with it (aborted on return,
    // including when the caller's timeout drops this future).
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::post(path)
        .header(HOST, authority.as_str())
        .header(CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        // A header value that is not valid (it never is: ours are hex, digits and ids)
        // is left out rather than sent malformed.
        if let Ok(value) = HeaderValue::from_str(value) {
            request = request.header(HeaderName::from_static(name), value);
        }
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    drop(driver);
    Ok(response.status().as_u16())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_ca_file_is_read_or_refused() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        assert!(tls_connector(None).is_ok());
        assert!(tls_connector(Some(&fixtures.join("ca.pem"))).is_ok());
        let Err(missing) = tls_connector(Some(&fixtures.join("missing.pem"))) else {
            panic!("a missing file is refused");
        };
        assert!(missing.to_string().starts_with("--ca-file "), "{missing}");
        // A key, not a certificate.
        let Err(key_only) = tls_connector(Some(&fixtures.join("localhost.key"))) else {
            panic!("a file without a certificate is refused");
        };
        assert!(
            key_only.to_string().contains("no PEM certificate"),
            "{key_only}"
        );
    }

    #[tokio::test]
    async fn https_to_a_closed_port_is_a_connect_error() {
        let tls = tls_connector(None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("https://127.0.0.1:{port}/");
        let e = post(&tls, &url, &[], vec![], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
        let e = post(&tls, "ftp://x/", &[], vec![], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::BadUrl { .. }), "{e}");
    }
}
