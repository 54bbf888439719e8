//! Client sockets with a chosen source address: the generator spreads its
//! connections over many loopback addresses, since one address has only
//! ~28,000 ports to connect from.

use std::net::SocketAddr;

use anyhow::Result;

/// A socket bound to `source` whose port is chosen at connect time
/// (`IP_BIND_ADDRESS_NO_PORT`): binding port 0 would reserve a port by
/// searching the address's ports one by one, which slows every connect
/// once there are tens of thousands, and could not share a port between
/// two servers.
pub fn bound_to(source: std::net::IpAddr) -> Result<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )?;
    socket.bind(SocketAddr::new(source, 0))?;
    Ok(socket)
}
