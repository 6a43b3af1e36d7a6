//! Socket activation: the listening TCP sockets systemd passed to this
//! process (`LISTEN_PID`, `LISTEN_FDS`, descriptors from 3 on), read through
//! libsystemd. Anything but a listening TCP stream socket is refused, so a
//! misconfigured `.socket` unit fails the service loudly instead of serving
//! nothing. Outside socket activation this returns no listeners.

use crate::error::{Error, Result};
use libsystemd::activation::{self, IsType};
use nix::sys::socket::{SockType, getsockopt, sockopt};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

/// The listeners systemd handed over, in `LISTEN_FDS` order; empty when this
/// process was not socket-activated (no `LISTEN_PID`, or one naming another
/// process). The variables are removed from the environment, so a second
/// call (or a child) never takes the same descriptors again. Call it before
/// starting threads: it changes the environment.
pub fn inherited_listeners() -> Result<Vec<TcpListener>> {
    let descriptors = activation::receive_descriptors(true)
        .map_err(|e| Error::Invalid(format!("socket activation: {e}")))?;
    descriptors
        .into_iter()
        .enumerate()
        .map(|(index, descriptor)| {
            let number = 3 + index;
            let inet = descriptor.is_inet();
            let fd = adopt(descriptor.into_raw_fd());
            if !inet {
                return Err(not_tcp(number, "not an IPv4 or IPv6 socket"));
            }
            if getsockopt(&fd, sockopt::SockType) != Ok(SockType::Stream) {
                return Err(not_tcp(number, "not a stream (TCP) socket"));
            }
            if getsockopt(&fd, sockopt::AcceptConn) != Ok(true) {
                return Err(not_tcp(
                    number,
                    "not listening (Accept=no and ListenStream= expected)",
                ));
            }
            Ok(TcpListener::from(fd))
        })
        .collect()
}

fn not_tcp(number: usize, why: &str) -> Error {
    Error::Invalid(format!(
        "socket activation: file descriptor {number} is {why}; queuectl web takes ListenStream= TCP sockets only"
    ))
}

/// Takes ownership of a descriptor systemd passed.
#[allow(unsafe_code)]
fn adopt(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: `fd` is one of the descriptors `LISTEN_FDS` counts from 3,
    // which systemd opened for this process (libsystemd checked `LISTEN_PID`
    // is ours) and nothing else in it holds: the variables are removed as
    // they are read, so no other call can take the same numbers.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
