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
    pub fn open(listen: SocketAddr) -> Result<Listeners> {
        let inherited = inherited_listeners()?;
        if !inherited.is_empty() {
            return Ok(Listeners {
                sockets: inherited,
                activated: true,
            });
        }
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
