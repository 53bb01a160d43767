//! The records of a [`super::Batch`], held in one buffer.
//!
//! Why: a `Vec<u8>` per record was an allocation on the outbox reader's thread and a free on
//! the database writer's for every line delivered, and the writer then copied every line again
//! into the request body (issue 24: ~1,500 instructions a message in the ingest benchmark).
//! Here records follow each other in one buffer, each followed by a `\n`, so the lines of any
//! run of records are already the request body the database takes.

use std::ops::Range;

/// Records one after another, each followed by `\n`, found by where they end.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Records {
    /// Each record and a `\n` after it.
    data: Vec<u8>,
    /// End of each record in `data` (where its `\n` is).
    ends: Vec<usize>,
}

impl Records {
    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of the records, without their `\n`s.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len() - self.ends.len()
    }

    pub(crate) fn push(&mut self, record: &[u8]) {
        self.data.extend_from_slice(record);
        self.ends.push(self.data.len());
        self.data.push(b'\n');
    }

    /// Where record `i` starts in `data`.
    fn start(&self, i: usize) -> usize {
        match i.checked_sub(1) {
            Some(before) => self.ends[before] + 1,
            None => 0,
        }
    }

    /// The records in order (the delivery path takes them [`Records::joined`]).
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        (0..self.len()).map(|i| &self.data[self.start(i)..self.ends[i]])
    }

    /// The records in `range` joined by `\n` (no `\n` after the last): one line-protocol
    /// body. Empty for an empty or out-of-bounds range.
    pub(crate) fn joined(&self, range: Range<usize>) -> &[u8] {
        if range.start >= range.end || range.end > self.len() {
            return &[];
        }
        &self.data[self.start(range.start)..self.ends[range.end - 1]]
    }
}

impl<R: AsRef<[u8]>> FromIterator<R> for Records {
    fn from_iter<I: IntoIterator<Item = R>>(iter: I) -> Self {
        let mut records = Records::default();
        for r in iter {
            records.push(r.as_ref());
        }
        records
    }
}

/// Tests compare a batch with the records they appended.
#[cfg(test)]
impl PartialEq<Vec<Vec<u8>>> for Records {
    fn eq(&self, other: &Vec<Vec<u8>>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_slice())
    }
}

#[cfg(test)]
impl IntoIterator for Records {
    type Item = Vec<u8>;
    type IntoIter = std::vec::IntoIter<Vec<u8>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
            .into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_and_joined_as_lines() {
        let input: Vec<&[u8]> = vec![b"a f=1", b"", b"b\nc", b"dd"];
        let r: Records = input.iter().collect();
        assert_eq!(r.len(), 4);
        assert_eq!(r.bytes(), 5 + 3 + 2);
        assert_eq!(r.iter().collect::<Vec<_>>(), input);
        for (i, want) in input.iter().enumerate() {
            assert_eq!(r.joined(i..i + 1), *want);
        }
        assert_eq!(r.joined(0..4), b"a f=1\n\nb\nc\ndd");
        assert_eq!(r.joined(1..3), b"\nb\nc");
        assert_eq!(r.joined(3..4), b"dd");
        assert_eq!(r.joined(2..2), b"");
        assert_eq!(r.joined(3..5), b"");
        assert!(Records::default().is_empty());
        assert_eq!(Records::default().joined(0..1), b"");
    }
}
