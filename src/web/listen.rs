//! Where the dashboard listens: the sockets systemd passed (socket
//! activation wins), else the address asked for, bound here.

use crate::error::{Error, Result};
use crate::systemd::activation::inherited_listeners;
use std::net::{SocketAddr, TcpListener};

/// The sockets to serve and whether systemd passed them.
pub struct Listeners {
    pub sockets: Vec<TcpListener>,
    pub activated: bool,
}

impl Listeners {
    /// systemd's sockets when it passed any; else `listen`, bound now.
    /// Must run before any thread starts (activation edits the environment).
    /// `allowed` judges the addresses first: the one asked for before it is
    /// bound (a refusal names it as given, port 0 and all), or systemd's.
    pub fn open(
        listen: SocketAddr,
        allowed: impl Fn(&[SocketAddr]) -> Result<()>,
    ) -> Result<Listeners> {
        let inherited = inherited_listeners()?;
        if !inherited.is_empty() {
            let listeners = Listeners {
                sockets: inherited,
                activated: true,
            };
            allowed(&listeners.addresses())?;
            return Ok(listeners);
        }
        allowed(&[listen])?;
        let socket = TcpListener::bind(listen)
            .map_err(|e| Error::io(format!("cannot listen on {listen}"), e))?;
        Ok(Listeners {
            sockets: vec![socket],
            activated: false,
        })
    }

    /// The addresses actually bound (a port 0 resolved).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// Whether only this host can reach `address`.
pub fn is_loopback(address: &SocketAddr) -> bool {
    address.ip().is_loopback()
}

/// What `--listen` and `web_listen` take: an IP address and port
/// (`127.0.0.1:9750`, `[::1]:9750`), or `localhost:PORT` (127.0.0.1). No
/// other name is looked up: the address served must be the one checked.
pub fn parse_address(text: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let port = text
        .rsplit_once(':')
        .filter(|(name, _)| name.eq_ignore_ascii_case("localhost"))
        .and_then(|(_, port)| port.parse::<u16>().ok());
    match port {
        Some(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        None => Err(format!(
            "'{text}' is not an address to listen on: give IP:PORT (127.0.0.1:9750, \
             [::1]:9750, 0.0.0.0:9750) or localhost:PORT"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn listen_addresses_are_ips_or_localhost() {
        for (text, want) in [
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("[::1]:9750", "[::1]:9750"),
            ("localhost:8080", "127.0.0.1:8080"),
            ("LOCALHOST:1", "127.0.0.1:1"),
        ] {
            assert_eq!(parse_address(text).unwrap().to_string(), want, "{text}");
        }
        for text in ["localhost", "localhost:x", "example.com:80", "1.2.3.4", ""] {
            let why = parse_address(text).unwrap_err();
            assert!(why.contains("localhost:PORT"), "{text}: {why}");
        }
    }
}
