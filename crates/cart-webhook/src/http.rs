//! The one HTTP request the worker makes: a POST over plain HTTP/1.1 (hyper, one
//! connection per attempt; webhooks are rare enough that pooling buys nothing).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// TLS is not built in (no TLS stack on this lean build): https URLs are accepted
    /// in the settings but cannot be delivered to yet.
    #[error("https is not supported by this build; use an http:// URL (e.g. behind a TLS proxy)")]
    Https,
    #[error("connect to {authority}: {source}")]
    Connect {
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

/// POSTs `body` and returns the response status; the whole exchange (connect, send,
/// response head) is bounded by `timeout`.
///
/// # Errors
/// The URL is unusable, the connection fails, or no answer came in time.
pub async fn post(
    url: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<u16, HttpError> {
    match tokio::time::timeout(timeout, exchange(url, headers, body)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout(timeout)),
    }
}

async fn exchange(
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
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(HttpError::Https),
        _ => return Err(bad("the scheme is not http")),
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .map_err(|source| HttpError::Connect {
            authority: authority.to_string(),
            source,
        })?;
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
