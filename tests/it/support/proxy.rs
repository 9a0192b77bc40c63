//! A TCP proxy a test can take down and bring back: a service outage (refused connections, cut
//! sockets) without touching the shared service other tests are using.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on a free local port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, upstream, stop.clone()));
        Proxy {
            addr,
            upstream,
            stop,
        }
    }

    /// A proxy in front of the broker at `amqp` (a test's AMQP URL); returns it and the URL
    /// that goes through it.
    pub async fn for_amqp(amqp: &str) -> (Proxy, String) {
        let uri: lapin::uri::AMQPUri = amqp.parse().unwrap();
        let upstream = tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = Proxy::start(upstream).await;
        let proxied = amqp.replacen(
            &format!("{}:{}", uri.authority.host, uri.authority.port),
            &proxy.addr().to_string(),
            1,
        );
        (proxy, proxied)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every proxied connection and refuses new ones.
    pub fn down(&mut self) {
        self.stop.cancel();
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.stop = CancellationToken::new();
        tokio::spawn(serve(listener, self.upstream, self.stop.clone()));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(listener: TcpListener, upstream: SocketAddr, stop: CancellationToken) {
    loop {
        let inbound = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = pump(&inbound, &outbound) => {}
                _ = pump(&outbound, &inbound) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// Copies `from` to `to` until either end closes.
async fn pump(from: &TcpStream, to: &TcpStream) -> std::io::Result<()> {
    use std::io::ErrorKind::WouldBlock;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        from.readable().await?;
        let n = match from.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut sent = 0;
        while sent < n {
            to.writable().await?;
            match to.try_write(&buf[sent..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
