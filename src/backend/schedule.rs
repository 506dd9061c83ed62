//! Schedules: the rule's Splunk-style `cron`, `earliest` and `latest` as the
//! interval and look-back window of targets that run a query every N minutes
//! over the last M (Elastic, Sentinel). What such a target cannot keep (a
//! fixed phase, snapping to `@m`) is returned as a note.

use super::Loss;
use crate::ir::Detection;

/// `-70m@m` -> (seconds, snap); only relative times in s/m/h/d/w.
fn relative_seconds(t: &str) -> Option<(u64, Option<String>)> {
    let t = t.trim();
    if t.is_empty() || t == "now" || t == "0" {
        return Some((0, None));
    }
    let (span, snap) = match t.split_once('@') {
        Some((a, b)) => (a, Some(b.to_string())),
        None => (t, None),
    };
    let span = span.strip_prefix('-')?;
    let digits: String = span.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = if digits.is_empty() {
        1
    } else {
        digits.parse().ok()?
    };
    let unit = &span[digits.len()..];
    let secs = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => n,
        "m" | "min" | "mins" | "minute" | "minutes" => n * 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => n * 3600,
        "d" | "day" | "days" => n * 86400,
        "w" | "week" | "weeks" => n * 7 * 86400,
        _ => return None,
    };
    Some((secs, snap.filter(|s| !s.is_empty())))
}

/// A duration in seconds as Elastic and Sentinel write it (`1h`, `70m`, `30s`).
pub fn span(secs: u64) -> String {
    match secs {
        0 => "0s".into(),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub fn minutes(m: u64) -> String {
    span(m * 60)
}

/// The interval of a simple cron, and whether its phase (a fixed minute or
/// hour) is lost, since Elastic runs a rule every interval from when it is enabled.
fn cron_interval(cron: &str) -> Option<(u64, bool)> {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [min, hour, dom, mon, dow] = f.as_slice() else {
        return None;
    };
    if (*dom, *mon, *dow) != ("*", "*", "*") {
        return None;
    }
    let step = |s: &str| -> Option<u64> {
        match s {
            "*" => Some(1),
            _ => s
                .strip_prefix("*/")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0),
        }
    };
    let fixed = |s: &str, max: u64| s.parse::<u64>().ok().filter(|n| *n < max);
    match (step(min), step(hour)) {
        (Some(m), Some(1)) if *hour == "*" => Some((m, false)),
        (None, Some(h)) if fixed(min, 60).is_some() => Some((h * 60, true)),
        (None, None) if fixed(min, 60).is_some() && fixed(hour, 24).is_some() => {
            Some((24 * 60, true))
        }
        _ => None,
    }
}

/// When a query runs and what it reads, in seconds before the run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Run every this many minutes.
    pub interval_min: u64,
    /// Read events from this long ago ...
    pub from_secs: u64,
    /// ... up to this long ago (0: up to the run time).
    pub to_secs: u64,
}

/// The window of a detection's schedule for a target that runs a query
/// every N minutes (`who`: "an Elastic rule"); without a schedule,
/// `default`. What the target cannot keep is pushed to `losses` as a note.
pub fn window(det: &Detection, who: &str, default: Window, losses: &mut Vec<Loss>) -> Window {
    let Some(s) = &det.output.schedule else {
        return default;
    };
    let stem = &det.stem;
    let earliest = relative_seconds(&s.earliest);
    let latest = relative_seconds(&s.latest);
    let interval = match cron_interval(&s.cron) {
        Some((m, phase)) => {
            if phase {
                losses.push(Loss::not_applicable(
                    stem,
                    "output.schedule.cron",
                    format!(
                        "`{}` runs at a fixed time; {who} runs every {} from when it is enabled",
                        s.cron,
                        minutes(m)
                    ),
                ));
            }
            m
        }
        None => {
            let m = match (&earliest, &latest) {
                (Some((e, _)), Some((l, _))) if e > l => (e - l).div_ceil(60),
                _ => 5,
            };
            losses.push(Loss::not_applicable(
                stem,
                "output.schedule.cron",
                format!(
                    "`{}` is not a simple interval; the rule runs every {}",
                    s.cron,
                    minutes(m)
                ),
            ));
            m
        }
    };
    let mut snaps = Vec::new();
    let from_secs = match &earliest {
        Some((e, snap)) if *e > 0 => {
            snaps.extend(snap.clone());
            *e
        }
        _ => {
            losses.push(Loss::not_applicable(
                stem,
                "output.schedule.earliest",
                format!(
                    "`{}` is not a relative time; the rule looks back {}",
                    s.earliest,
                    minutes(interval + 1)
                ),
            ));
            (interval + 1) * 60
        }
    };
    let to_secs = match &latest {
        Some((0, _)) => 0,
        Some((l, snap)) => {
            snaps.extend(snap.clone());
            *l
        }
        None => {
            losses.push(Loss::not_applicable(
                stem,
                "output.schedule.latest",
                format!(
                    "`{}` is not a relative time; the rule searches up to now",
                    s.latest
                ),
            ));
            0
        }
    };
    snaps.dedup();
    if !snaps.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            "output.schedule",
            format!(
                "snapping to `@{}` has no place in {who} window (from/to are relative to the run time)",
                snaps.join("`, `@")
            ),
        ));
    }
    Window {
        interval_min: interval,
        from_secs,
        to_secs,
    }
}
