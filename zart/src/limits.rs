//! Input limits shared by every backend, checked before anything is written.
//!
//! Ids and names are data, never SQL text: any UTF-8 string of 1 to [`MAX_NAME_BYTES`] bytes
//! without a NUL character is accepted.

use crate::Error;

/// The longest execution id, task name, step name, event name, patch id (with its `patch:`
/// prefix) or queue name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;

/// The longest sleep, event timeout, retry delay or deadline: 100 years. Longer ones are
/// refused with a clear error (wait without a timeout by passing `None`).
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// Checks a sleep, timeout or deadline against [`MAX_WAIT`].
///
/// # Errors
/// [`Error::InvalidInput`] naming `field` and the limit.
pub fn check_wait(field: &str, wait: std::time::Duration) -> Result<(), Error> {
    if wait > MAX_WAIT {
        return Err(Error::invalid(
            field,
            format!("{wait:?} is over the limit of 100 years"),
        ));
    }
    Ok(())
}

/// The default largest JSON input or event payload a [`crate::DurableScheduler`] accepts
/// (1 MiB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Checks an id or name: not empty, at most [`MAX_NAME_BYTES`] bytes, no NUL.
///
/// # Errors
/// [`Error::InvalidInput`] naming `field` and the limit.
pub fn check_name(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "{} bytes is over the limit of {MAX_NAME_BYTES} bytes",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(Error::invalid(
            field,
            "must not contain a NUL character (\\0)",
        ));
    }
    Ok(())
}

/// Checks a serialized JSON payload against a size limit in bytes, and that no string in it
/// holds a NUL character (PostgreSQL cannot store one).
///
/// # Errors
/// [`Error::InvalidInput`] naming `field` and the limit, or the NUL.
pub fn check_payload(field: &str, json: &serde_json::Value, limit: usize) -> Result<(), Error> {
    let size = json_size(json);
    if size > limit {
        return Err(Error::invalid(
            field,
            format!("{size} bytes of JSON is over the limit of {limit} bytes"),
        ));
    }
    if contains_nul(json) {
        return Err(Error::invalid(
            field,
            "JSON strings must not contain a NUL character (\\u0000): PostgreSQL cannot store it",
        ));
    }
    Ok(())
}

fn json_size(json: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail, and a Value always serializes.
    let _ = serde_json::to_writer(&mut counter, json);
    counter.0
}

fn contains_nul(json: &serde_json::Value) -> bool {
    match json {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_within_limits_pass() {
        for ok in [
            "a",
            "a_b%c'd\"e\\f",
            "🦀 emoji",
            &"x".repeat(MAX_NAME_BYTES),
        ] {
            assert!(check_name("execution id", ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn bad_names_name_the_field_and_limit() {
        let long = "é".repeat(200); // 400 bytes
        let err = check_name("execution id", &long).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid execution id: 400 bytes is over the limit of 255 bytes"
        );
        let err = check_name("task name", "").unwrap_err().to_string();
        assert_eq!(err, "invalid task name: must not be empty");
        assert!(check_name("step name", "a\0b").is_err());
    }

    #[test]
    fn payload_limit_counts_serialized_bytes() {
        let v = serde_json::json!({"k": "x".repeat(100)});
        assert!(check_payload("input", &v, 200).is_ok());
        let err = check_payload("input", &v, 50).unwrap_err().to_string();
        assert!(err.contains("over the limit of 50 bytes"), "{err}");
        let nul = serde_json::json!({"k": ["a\u{0}"]});
        assert!(check_payload("input", &nul, 1000).is_err());
    }
}
