//! A TCP proxy on loopback that injects the network faults the import guarantee must survive:
//! a request held for seconds and delivered late (a partition or a slow primary, as seen by
//! the server), and every connection cut at once.
//!
//! Client → server bytes are read and written in order by one task per connection, so holding
//! one chunk holds everything behind it on that connection, exactly as a stalled TCP stream
//! would; other connections flow on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Default)]
struct Control {
    /// The next client chunk containing this pattern waits this long before it goes on.
    hold: Option<(Vec<u8>, Duration)>,
    /// How many chunks were held so far.
    held: u64,
}

/// A running proxy to `upstream`. Stops when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    control: Arc<Mutex<Control>>,
    /// Where new connections go (existing ones stay where they were).
    upstream: Arc<Mutex<SocketAddr>>,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(Mutex::new(Control::default()));
        let (cut, _) = watch::channel(0u64);
        let upstream = Arc::new(Mutex::new(upstream));
        let task = {
            let control = control.clone();
            let cut = cut.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let to = *upstream.lock().unwrap();
                    let Ok(server) = TcpStream::connect(to).await else {
                        continue;
                    };
                    tokio::spawn(pump(client, server, control.clone(), cut.subscribe()));
                }
            })
        };
        Proxy {
            addr,
            control,
            upstream,
            cut,
            task,
        }
    }

    /// Sends new connections to `addr` from now on, as a DNS name or a virtual IP moves to a
    /// new primary; open connections stay on the old server.
    pub fn set_upstream(&self, addr: SocketAddr) {
        *self.upstream.lock().unwrap() = addr;
    }

    /// The next client → server chunk that contains `pattern` (on any connection) is delivered
    /// `delay` late, and so is everything behind it on its connection.
    pub fn hold_next(&self, pattern: &[u8], delay: Duration) {
        self.control.lock().unwrap().hold = Some((pattern.to_vec(), delay));
    }

    /// How many chunks were held so far.
    pub fn held(&self) -> u64 {
        self.control.lock().unwrap().held
    }

    /// Closes every open connection (new ones are still accepted).
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

/// The pattern MongoDB's wire protocol carries for a command named `name`: the first element
/// of the command document, a string-typed (0x02) key `name`.
pub fn mongo_command(name: &str) -> Vec<u8> {
    let mut p = vec![0x02];
    p.extend_from_slice(name.as_bytes());
    p.push(0);
    p
}

async fn pump(
    client: TcpStream,
    server: TcpStream,
    control: Arc<Mutex<Control>>,
    mut cut: watch::Receiver<u64>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = {
                let mut c = control.lock().unwrap();
                let hit = c.hold.as_ref().and_then(|(pattern, delay)| {
                    buf[..n]
                        .windows(pattern.len())
                        .any(|w| w == pattern.as_slice())
                        .then_some(*delay)
                });
                if hit.is_some() {
                    c.hold = None;
                    c.held += 1;
                }
                hit
            };
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::select! {
        _ = async { tokio::join!(upstream, downstream) } => {}
        _ = cut.changed() => {}
    }
}
