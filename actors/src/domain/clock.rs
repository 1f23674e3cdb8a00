//! The server's clock, the only one podium trusts.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where "now" comes from: the system clock, or one a test sets (to cross midnight, say).
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(std::sync::Arc<std::sync::atomic::AtomicU64>),
}

impl Clock {
    /// Milliseconds since the Unix epoch, by this clock.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(ms) => ms.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Unix ms as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, always millisecond precision): the form of
/// exported times, so a spreadsheet sorts them as text too.
pub fn utc_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod utc_tests {
    #[test]
    fn exported_times_have_a_fixed_form() {
        assert_eq!(super::utc_ms(1_795_392_000_123), "2026-11-23T00:00:00.123Z");
        assert_eq!(super::utc_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
