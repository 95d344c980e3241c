//! Archive frames: an export that reports its progress (`Accept:
//! application/vnd.cairn.archive-frames`). The body is a sequence of frames, each a kind
//! byte, a big-endian 32-bit length and that many bytes:
//!
//! - `d`: the next bytes of the archive (what the plain answer's body would be);
//! - `p`: a [`ProgressEvent`] as JSON: a `progress` report, or at the end exactly one
//!   `result` (the archive is whole) or `error` (the export failed midway: the bytes so
//!   far are not an archive).
//!
//! The archive's own bytes are never copied into JSON; a report costs a few dozen bytes.

use super::ProgressEvent;

/// The media type of an export sent as frames.
pub const ARCHIVE_FRAMES: &str = "application/vnd.cairn.archive-frames";

/// Kind of a frame of archive bytes.
pub const DATA: u8 = b'd';
/// Kind of a frame holding one [`ProgressEvent`].
pub const EVENT: u8 = b'p';
/// Largest event frame a reader accepts.
pub const MAX_EVENT: u32 = 1 << 20;

/// The five bytes in front of a frame of `kind` holding `len` bytes.
pub fn frame_header(kind: u8, len: u32) -> [u8; 5] {
    let l = len.to_be_bytes();
    [kind, l[0], l[1], l[2], l[3]]
}

/// An event as a whole frame.
pub fn event_frame(event: &ProgressEvent) -> Vec<u8> {
    // A ProgressEvent always serializes; an empty frame would be refused by readers.
    let json = serde_json::to_vec(event).unwrap_or_default();
    let mut out = Vec::with_capacity(5 + json.len());
    out.extend_from_slice(&frame_header(EVENT, json.len() as u32));
    out.extend_from_slice(&json);
    out
}

/// What a [`FrameReader`] found in a piece of the body.
#[derive(Debug)]
pub enum Piece<'a> {
    /// Archive bytes (a frame's data may arrive in several pieces).
    Data(&'a [u8]),
    /// A whole event.
    Event(ProgressEvent),
}

/// Splits a frames body, arriving in pieces of any size, into archive bytes and events,
/// without copying the archive's bytes.
#[derive(Debug, Default)]
pub struct FrameReader {
    header: Vec<u8>,
    kind: u8,
    left: u32,
    event: Vec<u8>,
}

impl FrameReader {
    /// Reads `input`, calling `found` for each piece in order; an error says why the body
    /// is not a frames body.
    pub fn read(
        &mut self,
        mut input: &[u8],
        found: &mut dyn FnMut(Piece<'_>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        while !input.is_empty() {
            if self.left == 0 && self.header.len() < 5 {
                let take = (5 - self.header.len()).min(input.len());
                self.header.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.header.len() < 5 {
                    break;
                }
                self.kind = self.header[0];
                self.left = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                match self.kind {
                    DATA => {}
                    EVENT if self.left > 0 && self.left <= MAX_EVENT => {}
                    _ => return Err(bad("a frame of an unknown kind or size")),
                }
                if self.left == 0 {
                    self.header.clear();
                }
                continue;
            }
            let take = (self.left as usize).min(input.len());
            let (now, rest) = input.split_at(take);
            input = rest;
            self.left -= take as u32;
            if self.kind == DATA {
                found(Piece::Data(now))?;
            } else {
                self.event.extend_from_slice(now);
                if self.left == 0 {
                    let event = serde_json::from_slice(&self.event)
                        .map_err(|e| bad(&format!("an event that is not JSON ({e})")))?;
                    self.event.clear();
                    found(Piece::Event(event))?;
                }
            }
            if self.left == 0 {
                self.header.clear();
            }
        }
        Ok(())
    }

    /// Whether the body so far ends between frames.
    pub fn at_boundary(&self) -> bool {
        self.left == 0 && self.header.is_empty()
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the export's frames are broken: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Progress;

    fn body() -> (Vec<u8>, Vec<u8>) {
        let archive: Vec<u8> = (0u32..10_000).map(|i| (i % 251) as u8).collect();
        let mut body = event_frame(&ProgressEvent::progress(Progress::bytes(
            "archive",
            0,
            Some(9),
        )));
        for part in archive.chunks(3000) {
            body.extend_from_slice(&frame_header(DATA, part.len() as u32));
            body.extend_from_slice(part);
            body.extend_from_slice(&event_frame(&ProgressEvent::progress(Progress::bytes(
                "archive",
                part.len() as u64,
                Some(9),
            ))));
        }
        body.extend_from_slice(&frame_header(DATA, 0));
        body.extend_from_slice(&event_frame(&ProgressEvent::Result {
            status: 200,
            body: serde_json::json!({}),
        }));
        (body, archive)
    }

    #[test]
    fn a_body_in_pieces_of_any_size_reads_back_the_archive_and_every_event() {
        let (body, archive) = body();
        for piece in [1usize, 2, 4, 5, 6, 7, 100, 4096, body.len()] {
            let mut r = FrameReader::default();
            let (mut data, mut events) = (Vec::new(), 0);
            let mut last = None;
            for chunk in body.chunks(piece) {
                r.read(chunk, &mut |p| {
                    match p {
                        Piece::Data(d) => data.extend_from_slice(d),
                        Piece::Event(e) => {
                            events += 1;
                            last = Some(e);
                        }
                    }
                    Ok(())
                })
                .expect("read");
            }
            assert!(r.at_boundary(), "piece {piece}");
            assert_eq!(data, archive, "piece {piece}");
            assert_eq!(events, 6, "piece {piece}");
            assert!(matches!(
                last,
                Some(ProgressEvent::Result { status: 200, .. })
            ));
        }
    }

    #[test]
    fn unknown_kinds_oversized_events_and_bad_json_are_refused_and_a_cut_is_seen() {
        let mut r = FrameReader::default();
        let err = r.read(b"x\0\0\0\x01a", &mut |_| Ok(())).expect_err("kind");
        assert!(err.to_string().contains("unknown kind"), "{err}");
        let mut r = FrameReader::default();
        let big = frame_header(EVENT, MAX_EVENT + 1);
        assert!(r.read(&big, &mut |_| Ok(())).is_err());
        let mut r = FrameReader::default();
        let mut b = frame_header(EVENT, 3).to_vec();
        b.extend_from_slice(b"{{{");
        assert!(r.read(&b, &mut |_| Ok(())).is_err());
        let mut r = FrameReader::default();
        let mut b = frame_header(DATA, 10).to_vec();
        b.extend_from_slice(b"abc");
        r.read(&b, &mut |_| Ok(())).expect("read");
        assert!(!r.at_boundary());
    }
}
