//! A TCP proxy that a test can cut, restore and point elsewhere: a database
//! outage as the service sees it (without stopping the real server other tests
//! share), or a restarted service on a new port behind an address that stays
//! the same (re-binding a freed port would race with other tests' port-0 binds).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

/// A running proxy to `upstream`.
#[derive(Debug, Clone)]
pub struct CuttableProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// New connections are accepted and held, never forwarded nor answered.
    stalled: Arc<AtomicBool>,
    /// Bumped on every cut; connections of an older generation close.
    generation: Arc<AtomicU64>,
    upstream: Arc<Mutex<SocketAddr>>,
    /// Forwarded connections open now.
    live: Arc<AtomicU64>,
}

impl CuttableProxy {
    /// Starts a proxy on a free port of 127.0.0.1.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let live = Arc::new(AtomicU64::new(0));
        let upstream = Arc::new(Mutex::new(upstream));
        let forwarding = Arc::clone(&live);
        let (cut_flag, stall_flag, generations, target) = (
            Arc::clone(&cut),
            Arc::clone(&stalled),
            Arc::clone(&generation),
            Arc::clone(&upstream),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut_flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mine = generations.load(Ordering::SeqCst);
                let generations = Arc::clone(&generations);
                if stall_flag.load(Ordering::SeqCst) {
                    tokio::spawn(async move {
                        let mut sink = tokio::io::sink();
                        let watch = async {
                            while generations.load(Ordering::SeqCst) == mine {
                                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            }
                        };
                        tokio::select! {
                            _ = tokio::io::copy(&mut inbound, &mut sink) => {}
                            () = watch => {}
                        }
                    });
                    continue;
                }
                let upstream = *target.lock().unwrap();
                let open = Live::new(&forwarding);
                tokio::spawn(async move {
                    let _open = open;
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let watch = async {
                        while generations.load(Ordering::SeqCst) == mine {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = watch => {}
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            stalled,
            generation,
            upstream,
            live,
        }
    }

    /// Sends new connections to `upstream` (and drops current ones).
    pub fn retarget(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits until no forwarded connection is open any more (after a
    /// [`Self::cut`], whose connections close a moment later).
    pub async fn closed(&self) {
        crate::wait::until(
            "the proxy's connections to close",
            crate::wait::DEFAULT_DEADLINE,
            || async { (self.live.load(Ordering::SeqCst) == 0).then_some(()) },
        )
        .await;
    }

    /// Drops every connection, then accepts new ones but never answers them
    /// (a peer that hangs).
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Forwards connections again (after a cut or a stall).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts a forwarded connection while it is open.
struct Live(Arc<AtomicU64>);

impl Live {
    fn new(count: &Arc<AtomicU64>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(count))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
