//! Incremental Server-Sent Events decoding and encoding.

use axum::body::Bytes;

/// One decoded SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

impl SseEvent {
    /// Encodes the event back to wire form.
    pub fn encode(&self) -> Bytes {
        let mut out = String::new();
        if let Some(name) = &self.event {
            out.push_str("event: ");
            out.push_str(name);
            out.push('\n');
        }
        for line in self.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// Encodes a single `data:` event.
pub fn data_event(data: &str) -> Bytes {
    SseEvent {
        event: None,
        data: data.to_owned(),
    }
    .encode()
}

/// Buffers bytes as they arrive and yields complete events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
}

impl SseDecoder {
    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if one is buffered. Comment-only blocks (keep-alives) are skipped.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut start = 0;
        let mut event = None;
        let mut data: Vec<String> = Vec::new();
        let mut has_field = false;
        while let Some(nl) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let raw = &self.buf[start..start + nl];
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            start += nl + 1;
            if line.is_empty() {
                if has_field {
                    self.buf.drain(..start);
                    return Some(SseEvent {
                        event,
                        data: data.join("\n"),
                    });
                }
                // A block of comments only (keep-alive): drop it now, or an upstream that only
                // sends keep-alives would grow the buffer without bound.
                self.buf.drain(..start);
                start = 0;
                continue;
            }
            if line.first() == Some(&b':') {
                continue;
            }
            let line = String::from_utf8_lossy(line);
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "data" => {
                    data.push(value.to_owned());
                    has_field = true;
                }
                "event" => {
                    event = Some(value.to_owned());
                    has_field = true;
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_events_split_across_chunks() {
        let mut d = SseDecoder::default();
        d.push(b": keep-alive\n\nda");
        assert_eq!(d.next_event(), None);
        d.push(b"ta: {\"a\":1}\r\n\r\nevent: error\ndata: x\ndata: y\n\n");
        assert_eq!(
            d.next_event(),
            Some(SseEvent {
                event: None,
                data: "{\"a\":1}".into()
            })
        );
        let e = d.next_event().expect("second event");
        assert_eq!(e.event.as_deref(), Some("error"));
        assert_eq!(e.data, "x\ny");
        assert_eq!(d.next_event(), None);
    }

    #[test]
    fn keep_alive_blocks_are_not_kept() {
        let mut d = SseDecoder::default();
        for _ in 0..1000 {
            d.push(b": keep-alive\n\n");
            assert_eq!(d.next_event(), None);
        }
        assert!(d.buf.is_empty(), "{} bytes kept", d.buf.len());
        d.push(b"data: x\n\n");
        assert_eq!(d.next_event().map(|e| e.data).as_deref(), Some("x"));
    }

    #[test]
    fn encode_round_trips() {
        let e = SseEvent {
            event: Some("error".into()),
            data: "a\nb".into(),
        };
        let mut d = SseDecoder::default();
        d.push(&e.encode());
        assert_eq!(d.next_event(), Some(e));
    }
}
