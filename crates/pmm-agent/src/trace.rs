//! W3C Trace Context: one trace per pool tick, a fresh span id per outgoing request.

use rand::RngCore;

/// The trace of one pool tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    trace_id: [u8; 16],
}

impl Trace {
    /// A new random trace (never all zeros, which W3C reserves as invalid).
    pub fn new() -> Self {
        let mut trace_id = [0u8; 16];
        while trace_id == [0u8; 16] {
            rand::rng().fill_bytes(&mut trace_id);
        }
        Self { trace_id }
    }

    /// 32 lowercase hex digits, as stored in `agent_decisions.trace_id` and `tool_calls.trace_id`.
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// A `traceparent` header value for one request of this trace: version 00, a new span id,
    /// sampled.
    pub fn traceparent(&self) -> String {
        let mut span = [0u8; 8];
        while span == [0u8; 8] {
            rand::rng().fill_bytes(&mut span);
        }
        format!("00-{}-{}-01", self.trace_id(), hex::encode(span))
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_has_the_w3c_shape_and_a_new_span_each_time() {
        let t = Trace::new();
        let a = t.traceparent();
        let b = t.traceparent();
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], t.trace_id());
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
        assert_ne!(a, b, "each request gets its own span id");
        assert_eq!(a[..35], b[..35], "one trace id for the whole tick");
        assert_ne!(Trace::new().trace_id(), t.trace_id());
    }
}
