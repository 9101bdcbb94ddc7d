//! Fires timer-triggered functions on their schedules (UTC) and on start-up when
//! `runOnStartup` is set, keeping an in-memory schedule monitor record per timer.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::app::{FunctionDef, TimerTrigger, Trigger};
use super::invoke::HostState;
use super::timer::{ScheduleStatus, timer_info};

/// Starts one task per timer function; each stops when `shutdown` flips.
pub fn start_timers(state: &Arc<HostState>, shutdown: &watch::Receiver<bool>) {
    for function in &state.app.functions {
        if let Trigger::Timer(timer) = &function.trigger {
            let state = Arc::clone(state);
            let function = function.clone();
            let timer = timer.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { run_timer(state, function, timer, shutdown).await });
        }
    }
}

/// The life of one timer: optional start-up run, then one run per occurrence, sequentially
/// (the next occurrence is computed after the previous run ends, like the timer listener).
async fn run_timer(
    state: Arc<HostState>,
    function: FunctionDef,
    timer: TimerTrigger,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Utc::now();
    let Some(first) = timer.schedule.next_after(started) else {
        log::warn!(target: "host", "timer '{}' has no future occurrence", function.name);
        return;
    };
    let mut status = ScheduleStatus {
        last: None,
        next: first,
        last_updated: started,
    };
    log::info!(target: "host", "timer '{}': next occurrence {}", function.name, first.to_rfc3339());
    if timer.run_on_startup {
        let info = timer_info(timer.use_monitor.then_some(&status), false);
        state
            .invoke_trigger(&function, info, "timer", "startup")
            .await;
    }
    loop {
        let wait = (status.next - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        let info = timer_info(timer.use_monitor.then_some(&status), false);
        state
            .invoke_trigger(&function, info, "timer", "schedule")
            .await;
        let now = Utc::now();
        let Some(next) = timer.schedule.next_after(now.max(status.next)) else {
            return;
        };
        status = ScheduleStatus {
            last: Some(status.next),
            next,
            last_updated: now,
        };
    }
}
