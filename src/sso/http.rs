//! Reading what an identity provider answers without trusting its size.
//!
//! `reqwest`'s `bytes()` (and oauth2's reqwest client, which uses it) reads a body to its end
//! whatever its length: an IdP, or anything an admin's URL points at, that streams without
//! end would grow the agent's memory for as long as the request's timeout lets it. Bodies
//! are read here chunk by chunk, and the read stops at the first byte past the limit.

use std::future::Future;
use std::pin::Pin;

use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is longer than the limit (by its `Content-Length`, or once read that far).
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed or timed out while reading.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// The body of `resp`, refused as soon as it is known to be over `limit` bytes.
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    // A declared length within the limit sizes the buffer; anything else grows as it comes.
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await? {
        if chunk.len() > limit - body.len() {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The oauth2 crate's HTTP client for token requests: `http` sends them (its redirect policy
/// and timeouts apply) and answers are read with [`read_body`], up to `limit` bytes.
pub struct CappedClient<'a> {
    /// The client that sends.
    pub http: &'a reqwest::Client,
    /// Largest answer read.
    pub limit: usize,
}

impl<'c> AsyncHttpClient<'c> for CappedClient<'_> {
    type Error = BodyError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BodyError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let resp = self.http.execute(request.try_into()?).await?;
            let mut answer = oauth2::http::Response::builder()
                .status(resp.status())
                .version(resp.version());
            if let Some(headers) = answer.headers_mut() {
                headers.extend(resp.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let body = read_body(resp, self.limit).await?;
            // Status, version and headers come from a parsed response: this cannot fail.
            Ok(answer
                .body(body)
                .unwrap_or_else(|_| oauth2::http::Response::new(Vec::new())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server answering every connection with `head`, then `chunks` chunks of 16 KiB
    /// (chunked transfer encoding, no length) for as long as the client reads.
    async fn serve(head: &'static str, chunks: usize) -> (String, tokio::task::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let mut sent = 0;
            if s.write_all(head.as_bytes()).await.is_err() {
                return sent;
            }
            let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
            for _ in 0..chunks {
                if s.write_all(chunk.as_bytes()).await.is_err() {
                    return sent;
                }
                sent += 0x4000;
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
            sent
        });
        (url, server)
    }

    const CHUNKED: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                           transfer-encoding: chunked\r\nconnection: close\r\n\r\n";

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let (url, server) = serve(CHUNKED, 4).await;
        let resp = client().get(url).send().await.unwrap();
        let body = read_body(resp, 4 * 0x4000).await.unwrap();
        assert_eq!(body.len(), 4 * 0x4000);
        assert_eq!(server.await.unwrap(), 4 * 0x4000);
    }

    #[tokio::test]
    async fn an_endless_body_is_refused_without_reading_it_all() {
        // 1 GiB offered; the read must stop past 64 KiB, long before the server is done.
        let (url, server) = serve(CHUNKED, 65_536).await;
        let resp = client().get(url).send().await.unwrap();
        let e = read_body(resp, 64 * 1024).await.unwrap_err();
        assert!(matches!(e, BodyError::TooLarge(65_536)), "{e:?}");
        // The server stops as soon as the agent closed the connection: only what the
        // sockets' buffers held went out, not the gigabyte.
        let sent = server.await.unwrap();
        assert!(sent < 64 * 1024 * 1024, "server sent {sent} bytes");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let (url, server) = serve(
            "HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\nconnection: close\r\n\r\n",
            0,
        )
        .await;
        let resp = client().get(url).send().await.unwrap();
        let e = read_body(resp, 1000).await.unwrap_err();
        assert!(matches!(e, BodyError::TooLarge(1000)), "{e:?}");
        server.abort();
    }

    #[tokio::test]
    async fn token_requests_keep_status_headers_and_body() {
        let (url, server) = serve(CHUNKED, 2).await;
        let request = oauth2::http::Request::builder()
            .method("POST")
            .uri(url)
            .body(b"grant_type=authorization_code".to_vec())
            .unwrap();
        let http = client();
        let capped = CappedClient {
            http: &http,
            limit: 1 << 20,
        };
        let resp = capped.call(request).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.body().len(), 2 * 0x4000);
        server.await.unwrap();
    }
}
