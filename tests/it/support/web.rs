//! `queuectl web` in tests: started on an ephemeral port (its address read
//! from the "listening on" line it prints), and a small HTTP/1.1 client on
//! a plain TcpStream that shows every status and header as sent.

use super::{TestEnv, wait_until};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running `queuectl web`, stopped with its environment.
pub struct WebServer {
    /// `127.0.0.1:PORT`.
    pub address: String,
    pub pid: u32,
    log: PathBuf,
}

impl WebServer {
    /// What it printed on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> HttpReply {
        self.request("GET", path, &[], b"")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpReply {
        request(&self.address, method, path, headers, body)
    }
}

impl TestEnv {
    /// Starts `queuectl web --listen 127.0.0.1:0 ARGS` and waits until it
    /// says where it listens.
    pub fn spawn_web(&mut self, args: &[&str]) -> WebServer {
        let mut cmd = self.cmd();
        cmd.args(["web", "--listen", "127.0.0.1:0"]).args(args);
        self.spawn_web_cmd(cmd)
    }

    /// Starts `cmd` (a `queuectl web` of some shape) and waits until it
    /// says where it listens; fails the test with its stderr if it exits.
    pub fn spawn_web_cmd(&mut self, mut cmd: Command) -> WebServer {
        let log = (0..)
            .map(|n| self.path(&format!("web-{n}.log")))
            .find(|path| !path.exists())
            .unwrap();
        let file = std::fs::File::create(&log).unwrap();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start queuectl web");
        let mut address = None;
        wait_until("queuectl web listens", Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("queuectl web exited with {status}: {text}");
            }
            // Complete lines only: the server may be halfway through
            // writing this one (a cut port read as an address).
            address = text
                .split_inclusive('\n')
                .filter_map(|l| l.strip_suffix('\n'))
                .find_map(|l| l.strip_prefix("listening on http://"))
                .map(str::to_owned);
            address.is_some()
        });
        let pid = child.id();
        self.adopt(child);
        WebServer {
            address: address.unwrap(),
            pid,
            log,
        }
    }
}

/// A reply as received.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    // The address as Host unless the test names another.
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    send(address, &raw)
}

/// Sends `raw` (a whole request, as bytes) and reads the reply.
pub fn send(address: &str, raw: &[u8]) -> HttpReply {
    let mut stream = TcpStream::connect(address).expect("connect to queuectl web");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read the reply");
    parse(&reply)
}

fn parse(raw: &[u8]) -> HttpReply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpReply {
        status,
        headers,
        body: String::from_utf8(body).expect("a UTF-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size");
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("a hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
