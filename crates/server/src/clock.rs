//! Wall-clock time in Unix milliseconds: the one place the server reads the clock for
//! TTLs (the state machine never does; expiry times travel inside requests).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
