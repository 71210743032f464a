//! The summary `connect --count` prints: handshakes per second, failures by reason, latency
//! quantiles and, for held tunnels, drops and reconnects. What was counted and how the
//! quantiles are taken are `tunnel::fleet`'s; this module only lays the figures out.

use std::io::{self, Write};

use crate::tunnel::fleet::FleetReport;

/// Writes `r` as lines of text.
pub fn render(w: &mut impl Write, r: &FleetReport) -> io::Result<()> {
    writeln!(
        w,
        "{} handshakes attempted, {} succeeded, {} failed in {:.3} s: {:.1} handshakes/s",
        r.attempted,
        r.ok,
        r.attempted - r.ok,
        r.elapsed.as_secs_f64(),
        r.handshakes_per_sec()
    )?;
    for (why, n) in &r.failures {
        writeln!(w, "  {n:>6}  {why}")?;
    }
    if let (Some(p50), Some(p99), Some(max)) = (r.latency(0.5), r.latency(0.99), r.latency(1.0)) {
        writeln!(
            w,
            "handshake time (connect + TLS): p50 {:.3} s, p99 {:.3} s, max {:.3} s",
            p50.as_secs_f64(),
            p99.as_secs_f64(),
            max.as_secs_f64()
        )?;
    }
    if r.dropped > 0 || !r.reconnect_failures.is_empty() {
        let failed: usize = r.reconnect_failures.values().sum();
        writeln!(
            w,
            "{} held tunnels dropped, {} reconnected, {failed} reconnect attempts failed; \
             first drop to last reconnect {:.3} s: {:.1} reconnects/s",
            r.dropped,
            r.reconnected,
            r.reconnect_span.as_secs_f64(),
            r.reconnected as f64 / r.reconnect_span.as_secs_f64().max(1e-9)
        )?;
        for (why, n) in &r.reconnect_failures {
            writeln!(w, "  {n:>6}  reconnect: {why}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn summary_names_rate_failures_quantiles_and_reconnects() {
        let mut r = FleetReport {
            attempted: 4,
            ok: 3,
            elapsed: Duration::from_secs(2),
            latencies: vec![
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400),
            ],
            dropped: 3,
            reconnected: 2,
            reconnect_span: Duration::from_secs(1),
            ..FleetReport::default()
        };
        r.failures.insert("timeout: handshake".into(), 1);
        r.reconnect_failures
            .insert("closed during handshake".into(), 1);
        let mut out = Vec::new();
        render(&mut out, &r).unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines,
            [
                "4 handshakes attempted, 3 succeeded, 1 failed in 2.000 s: 1.5 handshakes/s",
                "       1  timeout: handshake",
                "handshake time (connect + TLS): p50 0.200 s, p99 0.400 s, max 0.400 s",
                "3 held tunnels dropped, 2 reconnected, 1 reconnect attempts failed; first drop \
                 to last reconnect 1.000 s: 2.0 reconnects/s",
                "       1  reconnect: closed during handshake",
            ]
        );
    }
}
