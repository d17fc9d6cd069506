//! Raw HTTP on 127.0.0.1 for what the SDK has no client for here: a minimal HTTP/1.1 client
//! (moto's control API, Lambda invocations through the local Lambda service; one request per
//! connection keeps it simple) and a one-shot server standing in for the packaging repository.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// An HTTP response: status, headers (names lowercased) and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == &name.to_ascii_lowercase())
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request to 127.0.0.1:`port` and reads the whole answer (the connection is closed
/// by the server after it, so the body ends at end of stream).
pub fn request(port: u16, method: &str, path: &str, body: &[u8], timeout: Duration) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {}", String::from_utf8_lossy(&raw))))
}

fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(length) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(length);
    }
    Some(Response { status, headers, body })
}

/// Whether something answers HTTP on 127.0.0.1:`port` at `path` (any status).
pub fn answers(port: u16, path: &str) -> bool {
    request(port, "GET", path, b"", Duration::from_secs(5)).is_ok()
}

/// Serves one request with `status` (e.g. `"200 OK"`) and `body`, then stops; returns a
/// `CURRENT_TARGETS_URL` template (`{branch}` left in) pointing at it.
pub fn serve_current_targets(status: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1");
    let address = listener.local_addr().expect("the bound address");
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}/packaging/{{branch}}/CURRENT_TARGETS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_and_a_body_cut_at_its_length() {
        let response =
            parse(b"HTTP/1.1 200 OK\r\nX-Amz-Function-Error: Unhandled\r\nContent-Length: 2\r\n\r\n{}junk").unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(response.body, b"{}");
        assert!(parse(b"garbage").is_none());
    }
}
