//! Time as the services keep it: a leaf, imported by every feature.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

/// No lifetime is taken as longer than this (a century), so every expiry fits both databases.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Now, at the microsecond precision both SQLite and PostgreSQL keep, so a value reads back
/// exactly as it was written.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A lifetime as a `TimeDelta` to add to a time, at most a century.
pub(super) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d.min(LONGEST)).unwrap_or(TimeDelta::MAX)
}
