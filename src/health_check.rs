//! `wagate health`: asks a running server's `/healthz`, for container health checks (the image
//! carries no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to reach a server listening on `listen` from the same host: an unspecified address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Ok when `GET /healthz` at `addr` answers 200 within `within`.
pub async fn check(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    tokio::time::timeout(within, ask(addr))
        .await
        .with_context(|| format!("http://{addr}/healthz did not answer within {within:?}"))?
}

async fn ask(addr: SocketAddr) -> anyhow::Result<()> {
    let mut conn = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    // The status line is all we need; a healthy answer is a few dozen bytes.
    let mut head = vec![0; 256];
    let mut len = 0;
    while len < head.len() && !head[..len].contains(&b'\n') {
        let n = conn.read(&mut head[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let line = String::from_utf8_lossy(&head[..len]);
    let line = line.lines().next().unwrap_or_default();
    match line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => bail!("http://{addr}/healthz answered `{line}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        let local = |s: &str| local_address(s.parse().unwrap()).to_string();
        assert_eq!(local("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(local("[::]:9000"), "[::1]:9000");
        assert_eq!(local("10.1.2.3:8080"), "10.1.2.3:8080");
    }
}
