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

/// The life of one timer, following the timer listener: an optional start-up run, then one
/// run per occurrence, sequentially; after every run the monitor record moves on (and is
/// stored for the admin API when `useMonitor` is on).
async fn run_timer(
    state: Arc<HostState>,
    function: FunctionDef,
    timer: TimerTrigger,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(mut status) = ScheduleStatus::initial(&timer.schedule, Utc::now()) else {
        log::warn!(target: "host", "timer '{}' has no future occurrence", function.name);
        return;
    };
    log::info!(
        target: "host",
        "timer '{}': next occurrence {}",
        function.name,
        status.next.to_rfc3339()
    );
    if timer.run_on_startup {
        match fire(&state, &function, &timer, &status, "startup").await {
            Some(next) => status = next,
            None => return,
        }
    }
    loop {
        let wait = (status.next - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        match fire(&state, &function, &timer, &status, "schedule").await {
            Some(next) => status = next,
            None => return,
        }
    }
}

/// One run; returns the next monitor record (`None` when the schedule has no more occurrences).
async fn fire(
    state: &HostState,
    function: &FunctionDef,
    timer: &TimerTrigger,
    status: &ScheduleStatus,
    reason: &'static str,
) -> Option<ScheduleStatus> {
    let invocation_time = Utc::now();
    let info = timer_info(timer.use_monitor.then_some(status), false);
    state.invoke_trigger(function, info, "timer", reason).await;
    let next = status.after_run(&timer.schedule, invocation_time, reason == "schedule")?;
    if timer.use_monitor {
        state.store_timer_status(&function.name, next);
    }
    Some(next)
}
