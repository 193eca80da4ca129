//! Figure 5 of `cargo bench --bench e2e`: what the LP sandbox (issue 11,
//! build 3) costs. In alternating rounds, the same two measurements with
//! `sandbox = false` and `sandbox = true` in every process: the 64 B round
//! trip back to back (pingpong, as figure 1's `lp_rtt_64`) and the launch
//! of 32 idle LPs to ready (as figure 3). Rows: medians over the rounds;
//! ratios on / off of the medians. Target: on <= 1.05 x off for both (the
//! p50 and p99 of the round trip, the wall time of the launch).

use crate::common::LatRow;
use crate::harness::{median, Bins};
use crate::runs;
use std::path::Path;

/// The figure: round trips (off, on) and launch walls in ms (off, on).
pub(crate) struct SandboxCost {
    pub rtt: [LatRow; 2],
    pub launch_ms: [f64; 2],
    pub launches: [Vec<f64>; 2],
}

/// `rounds` rounds of `iters` round trips each way, `launches` launches
/// each way, off and on alternating.
pub(crate) fn measure(
    bins: &Bins,
    dir: &Path,
    iters: u64,
    rounds: usize,
    launches: usize,
) -> SandboxCost {
    let mut rtt: [Vec<LatRow>; 2] = Default::default();
    let mut walls: [Vec<f64>; 2] = Default::default();
    for round in 0..rounds {
        for (k, on) in [false, true].into_iter().enumerate() {
            let r = runs::lp_paced(bins, dir, iters, 0, false, Some(on));
            eprintln!(
                "e2e bench: sandbox {on}, round {round}: lp_rtt_64 p50 {:.2} µs p99 {:.2} µs",
                r.p50_ns / 1e3,
                r.p99_ns / 1e3
            );
            rtt[k].push(r);
        }
    }
    for round in 0..launches {
        for (k, on) in [false, true].into_iter().enumerate() {
            let (w, _) = runs::launch_ready_once(bins, dir, 32, round, Some(on));
            eprintln!("e2e bench: sandbox {on}, launch {round}: 32 LPs ready after {w:.1} ms");
            walls[k].push(w);
        }
    }
    SandboxCost {
        rtt: [
            LatRow::median(&rtt[0], "shmcollab_sandbox_off"),
            LatRow::median(&rtt[1], "shmcollab_sandbox_on"),
        ],
        launch_ms: [median(&mut walls[0].clone()), median(&mut walls[1].clone())],
        launches: walls,
    }
}

impl SandboxCost {
    /// The JSON lines and the verdict lines.
    pub(crate) fn report(&self) {
        let [off, on] = &self.rtt;
        let (p50, p99) = (on.p50_ns / off.p50_ns, on.p99_ns / off.p99_ns);
        let launch = self.launch_ms[1] / self.launch_ms[0];
        println!(
            "{{\"bench\":\"sandbox_cost\",\"system\":\"shmcollab\",\"rtt_p50_off_ns\":{:.0},\"rtt_p50_on_ns\":{:.0},\"rtt_p99_off_ns\":{:.0},\"rtt_p99_on_ns\":{:.0},\"rtt_p50_ratio\":{p50:.3},\"rtt_p99_ratio\":{p99:.3},\"launch_32_off_ms\":{:.1},\"launch_32_on_ms\":{:.1},\"launch_ratio\":{launch:.3}}}",
            off.p50_ns, on.p50_ns, off.p99_ns, on.p99_ns, self.launch_ms[0], self.launch_ms[1],
        );
        let ok = |r: f64| if r <= 1.05 { "ok" } else { "MISSED" };
        println!(
            "sandbox_cost: lp_rtt_64 on/off p50 {p50:.3} ({:.2} / {:.2} µs), p99 {p99:.3} ({:.2} / {:.2} µs)   (target <= 1.05: {}, {})",
            on.p50_ns / 1e3,
            off.p50_ns / 1e3,
            on.p99_ns / 1e3,
            off.p99_ns / 1e3,
            ok(p50),
            ok(p99),
        );
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "sandbox_cost: launch_32_ready on/off {launch:.3} ({:.1} / {:.1} ms; on: {}; off: {})   (target <= 1.05: {})",
            self.launch_ms[1],
            self.launch_ms[0],
            fmt(&self.launches[1]),
            fmt(&self.launches[0]),
            ok(launch),
        );
    }
}
