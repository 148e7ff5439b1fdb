//! The faults of a case, drawn from its own random stream: SIGKILLs of ferry during the
//! copy (after a copy phase shows in its output, plus a random delay) and at the handoff
//! (right after `copy done`), then timed events while the workload streams: more SIGKILLs,
//! a fast restart of the source, a crash (immediate shutdown) of the target and a target
//! outage of a few seconds.
//!
//! The source is only ever restarted with a fast shutdown: a crash there could lose commits
//! that Ferry already applied, a divergence that is the source's, not Ferry's.

use std::fmt;
use std::time::Duration;

use super::process::Marker;
use super::rng::Rng;
use super::Features;

/// Something done to the pipeline while the workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of ferry; it is started again after the pause.
    KillFerry { pause: Duration },
    /// Fast shutdown and start of the source.
    RestartSource,
    /// Immediate shutdown (a crash, recent asynchronous commits lost) and start of the target.
    CrashTarget,
    /// The target stopped for a while, then started.
    TargetOutage { down: Duration },
}

/// A kill of the copy phase: after `marker` shows, wait `delay`, SIGKILL.
#[derive(Clone, Copy, Debug)]
pub struct CopyKill {
    pub marker: Marker,
    pub delay: Duration,
}

/// Every fault of a case.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Runs killed during the copy, in order, each on a fresh start.
    pub copy_kills: Vec<CopyKill>,
    /// Faults at times after the workload started, in order.
    pub timed: Vec<(Duration, Fault)>,
}

impl FaultPlan {
    /// The faults for a case with a workload of `workload`.
    pub fn generate(rng: &mut Rng, features: &Features, workload: Duration) -> FaultPlan {
        let mut plan = FaultPlan::default();
        if features.kill_ferry {
            for _ in 0..rng.between(0, 2) {
                // The copy of a case takes a few hundred milliseconds: short delays land in it.
                let (marker, delay) = if rng.percent(50) {
                    (Marker::CopyPlanned, rng.between(0, 150))
                } else {
                    (Marker::TableCopied, rng.between(0, 60))
                };
                plan.copy_kills.push(CopyKill {
                    marker,
                    delay: Duration::from_millis(delay),
                });
            }
            if rng.percent(60) {
                plan.copy_kills.push(CopyKill {
                    marker: Marker::CopyDone,
                    delay: Duration::from_millis(rng.between(0, 400)),
                });
            }
        }
        let mut kinds: Vec<u8> = Vec::new();
        if features.kill_ferry {
            kinds.extend([0, 0, 0]);
        }
        if features.restart_source {
            kinds.push(1);
        }
        if features.restart_target {
            kinds.extend([2, 3]);
        }
        if !kinds.is_empty() {
            let ms = workload.as_millis() as u64;
            let mut times: Vec<u64> = (0..rng.between(1, 4))
                .map(|_| rng.between(ms / 5, ms * 9 / 10))
                .collect();
            times.sort_unstable();
            let mut restarted_source = false;
            for t in times {
                let mut fault = match *rng.pick(&kinds) {
                    0 => Fault::KillFerry {
                        pause: Duration::from_millis(rng.between(0, 1500)),
                    },
                    1 => Fault::RestartSource,
                    2 => Fault::CrashTarget,
                    _ => Fault::TargetOutage {
                        down: Duration::from_millis(rng.between(500, 3000)),
                    },
                };
                // Each source restart costs the workload its connections; once is enough.
                if fault == Fault::RestartSource {
                    if restarted_source {
                        fault = Fault::CrashTarget;
                    }
                    restarted_source = true;
                }
                plan.timed.push((Duration::from_millis(t), fault));
            }
        }
        plan
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .copy_kills
            .iter()
            .map(|k| format!("kill {} ms after {:?}", k.delay.as_millis(), k.marker))
            .collect();
        parts.extend(
            self.timed
                .iter()
                .map(|(t, fault)| format!("at {:.1} s {fault:?}", t.as_secs_f64())),
        );
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}
