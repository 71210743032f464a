//! The load generator of `connect --count N`: many device tunnels from one process, with
//! bounded concurrency, to emulate a fleet or load a server.
//!
//! Owns the fleet's scheduling (workers taking the next attempt, tunnels held with heartbeats
//! and reconnected as a device would after the FMC drops them) and its counts
//! ([`FleetReport`]: handshakes, failures by reason, latencies, reconnects). Each attempt and
//! each held session is the device's own ([`super::client`]), so the fleet measures the
//! client users run; laying the report out is `report::fleet`'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::ClientConfig;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::TunnelError;
use super::client::{Client, End, Session, Stream};
use super::framed::Framed;
use super::log::ThreadLog;

/// `--count N --concurrency C [--hold SECONDS]`.
#[derive(Clone, Copy, Debug)]
pub struct FleetSettings {
    /// How many first handshakes to make (`--count`).
    pub count: usize,
    /// How many workers make them at once (`--concurrency`; 0 counts as 1).
    pub concurrency: usize,
    /// Keep each tunnel up (HELLO + heartbeats) this long instead of closing after the handshake;
    /// a tunnel the FMC drops meanwhile reconnects as a device would (see [`fleet`]).
    pub hold: Option<Duration>,
}

/// What a fleet run counted.
#[derive(Clone, Debug, Default)]
pub struct FleetReport {
    /// First handshakes tried (the settings' `count`).
    pub attempted: usize,
    /// First handshakes that completed.
    pub ok: usize,
    /// Failures by [`HandshakeFailure::reason`](super::failure::HandshakeFailure::reason).
    pub failures: BTreeMap<String, usize>,
    /// From the first connect to the last handshake's end (holding time not included).
    pub elapsed: Duration,
    /// Connect + handshake time of the successful first handshakes, sorted.
    pub latencies: Vec<Duration>,
    /// With `hold`: times a held tunnel ended early (the FMC closed or lost it, or HELLO
    /// failed after a good handshake).
    pub dropped: usize,
    /// With `hold`: dropped tunnels that came back (handshake and HELLO again).
    pub reconnected: usize,
    /// With `hold`: failed reconnect attempts (and failed HELLOs) by reason.
    pub reconnect_failures: BTreeMap<String, usize>,
    /// From the first drop to the last tunnel back.
    pub reconnect_span: Duration,
}

impl FleetReport {
    /// Completed first handshakes per second of `elapsed`.
    pub fn handshakes_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p` quantile (0..=1) of [`Self::latencies`].
    pub fn latency(&self, p: f64) -> Option<Duration> {
        let n = self.latencies.len();
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n.max(1)) - 1;
        self.latencies.get(i).copied()
    }

    /// True when no first handshake and no reconnect failed.
    pub fn all_ok(&self) -> bool {
        self.ok == self.attempted && self.reconnect_failures.is_empty()
    }
}

/// What the held tunnels of a fleet saw after their first handshake.
#[derive(Default)]
struct Later {
    dropped: usize,
    reconnected: usize,
    failures: BTreeMap<String, usize>,
    first_drop: Option<Instant>,
    last_back: Option<Instant>,
}

type LaterLock = Arc<std::sync::Mutex<Later>>;

fn later(l: &LaterLock) -> std::sync::MutexGuard<'_, Later> {
    crate::sync::lock(l)
}

/// Opens `f.count` tunnels, `f.concurrency` handshakes at a time, all with this client's files.
///
/// With `hold`, each tunnel then lives like a device's for that long: HELLO, heartbeats, and
/// when the FMC drops it (a restart, a lost session) it reconnects after the client's initial
/// backoff, doubling on failure, as [`Client::run`] does. That is how a reconnect storm is
/// made: restart the server while a fleet holds its tunnels.
pub async fn fleet(client: Arc<Client>, f: FleetSettings) -> Result<FleetReport, TunnelError> {
    let (cfg, id) = client.load()?;
    let uuid: Arc<str> = id.cert().and_then(|c| c.title).unwrap_or_default().into();
    let next = Arc::new(AtomicUsize::new(0));
    let after: LaterLock = Arc::default();
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..f.concurrency.max(1) {
        let (client, cfg, next, uuid, after) = (
            client.clone(),
            cfg.clone(),
            next.clone(),
            uuid.clone(),
            after.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut ok = 0usize;
            let mut failures: BTreeMap<String, usize> = BTreeMap::new();
            let mut latencies = Vec::new();
            let mut holders = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= f.count {
                    break;
                }
                let tl = client.s.log.thread(client.s.log.next_tid());
                let t0 = Instant::now();
                match client.attempt(cfg.clone(), &tl).await {
                    Ok((tls, _)) => {
                        ok += 1;
                        latencies.push(t0.elapsed());
                        match f.hold {
                            None => {
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(1),
                                    Framed::new(tls).close(),
                                )
                                .await;
                            }
                            Some(hold) => {
                                let name = format!("{}-{i}", client.s.name);
                                holders.push(tokio::spawn(hold_tunnel(
                                    client.clone(),
                                    cfg.clone(),
                                    tls,
                                    tl,
                                    (uuid.clone(), name),
                                    hold,
                                    after.clone(),
                                )));
                            }
                        }
                    }
                    Err(fail) => {
                        fail.log(&tl);
                        *failures.entry(fail.reason()).or_default() += 1;
                    }
                }
            }
            (ok, failures, latencies, holders)
        }));
    }
    let mut report = FleetReport::default();
    let mut holders = Vec::new();
    for w in workers {
        let (ok, failures, lat, h) = w.await.map_err(|e| TunnelError::Config(e.to_string()))?;
        report.ok += ok;
        for (k, v) in failures {
            *report.failures.entry(k).or_default() += v;
        }
        report.latencies.extend(lat);
        holders.extend(h);
    }
    report.elapsed = start.elapsed();
    report.attempted = f.count;
    report.latencies.sort_unstable();
    for h in holders {
        let _ = h.await;
    }
    let l = later(&after);
    report.dropped = l.dropped;
    report.reconnected = l.reconnected;
    report.reconnect_failures = l.failures.clone();
    if let (Some(a), Some(b)) = (l.first_drop, l.last_back) {
        report.reconnect_span = b.saturating_duration_since(a);
    }
    Ok(report)
}

/// One held tunnel of a fleet: the session on `first`, then reconnects until `hold` is over.
async fn hold_tunnel(
    client: Arc<Client>,
    cfg: Arc<ClientConfig>,
    first: Stream,
    tl: ThreadLog,
    (uuid, name): (Arc<str>, String),
    hold: Duration,
    after: LaterLock,
) {
    let until = Instant::now() + hold;
    let (stop_tx, mut stop) = watch::channel(false);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep_until(until).await;
        let _ = stop_tx.send(true);
    });
    let backoff = client.s.backoff;
    let mut tls = Some(first);
    let mut again = false;
    let mut delay = backoff.initial;
    loop {
        if let Some(t) = tls.take() {
            let mut s = Session::new(&client.s, &tl, Framed::new(t), &uuid, &name);
            match s.hello().await {
                Ok(_) => {
                    if again {
                        let mut l = later(&after);
                        l.reconnected += 1;
                        l.last_back = Some(Instant::now());
                    }
                    match s.run(false, stop.clone(), &Notify::new()).await {
                        End::Stopped | End::Done(_) => break,
                        End::Lost(why) | End::Restart(why) => {
                            if !tl.is_quiet() {
                                tl.warn(&format!("Connection to {} lost: {why}", client.addr));
                            }
                            let mut l = later(&after);
                            l.dropped += 1;
                            l.first_drop.get_or_insert_with(Instant::now);
                            delay = backoff.initial;
                        }
                    }
                }
                Err(fail) => {
                    // The TLS session was up, so this tunnel counts as dropped too.
                    fail.log(&tl);
                    let mut l = later(&after);
                    *l.failures.entry(fail.reason()).or_default() += 1;
                    l.dropped += 1;
                    l.first_drop.get_or_insert_with(Instant::now);
                    delay = (delay * 2).min(backoff.max);
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = super::stopped(&mut stop) => break,
        }
        again = true;
        match client.attempt(cfg.clone(), &tl).await {
            Ok((t, _)) => tls = Some(t),
            Err(fail) => {
                fail.log(&tl);
                *later(&after).failures.entry(fail.reason()).or_default() += 1;
                delay = (delay * 2).min(backoff.max);
            }
        }
    }
    stopper.abort();
}
