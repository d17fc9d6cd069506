//! A stand-in for the packaging repository: a one-shot HTTP server on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;

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
