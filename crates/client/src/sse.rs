//! An incremental `text/event-stream` parser (the HTML standard's algorithm, minus
//! `retry` handling): bytes in, complete events out. Also splits the HTTP-streaming
//! transport's lines.

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `event:` field, empty for the default `message`.
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// `id:` field of this event, if it had one.
    pub id: Option<String>,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// Feeds bytes; returns every event completed by them. Comments (`:` lines) are
    /// dropped. Invalid UTF-8 is replaced, as browsers do.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A CR directly followed by LF is one line end; if the CR is the last byte we
            // wait, because the LF may be in the next chunk.
            let mut end = pos + 1;
            if self.buf[pos] == b'\r' {
                match self.buf.get(pos + 1) {
                    Some(b'\n') => end += 1,
                    Some(_) => {}
                    None => break,
                }
            }
            let line: Vec<u8> = self.buf.drain(..end).take(pos).collect();
            let line = String::from_utf8_lossy(&line);
            self.line(&line, &mut out);
        }
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                    id: self.id.take(),
                });
            } else {
                self.event.clear();
                self.id = None;
            }
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere() {
        let input = b": prelude\n\nretry: 2000\n\nid: a:1\ndata: {\"x\":1}\n\nevent: reset\r\nid: a:5\r\ndata: r\r\n\r\ndata: l1\ndata: l2\n\n";
        for split in 0..input.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&input[..split]);
            got.extend(p.feed(&input[split..]));
            assert_eq!(got.len(), 3, "split {split}");
            assert_eq!(
                got[0],
                SseEvent {
                    event: String::new(),
                    data: "{\"x\":1}".into(),
                    id: Some("a:1".into())
                }
            );
            assert_eq!(got[1].event, "reset");
            assert_eq!(got[1].id.as_deref(), Some("a:5"));
            assert_eq!(got[2].data, "l1\nl2");
        }
    }
}
