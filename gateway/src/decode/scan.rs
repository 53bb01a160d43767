//! A hand-written reader for plain native telemetry, tried before serde_json.
//!
//! Why: even borrowed, serde_json's generic decoding of a ~90-byte telemetry message cost about
//! 4,100 instructions (callgrind, ingest benchmark, issue 24), over half of the decoder's work
//! per message. Devices send one shape: a flat object, names without escapes, short decimals.
//! This reader takes exactly that shape in one pass and answers `None` for anything else
//! (escapes, exponents, long numbers, `-0`, duplicate or unknown fields, nesting, bad UTF-8,
//! any syntax error), which the caller then decodes with serde_json as before. serde_json stays
//! the reference: whatever this reader accepts, serde_json accepts with the same content
//! (the differential tests below), and every error, with its text and class, is serde_json's.

use super::wire::{Metric, Sorted, Telemetry, Text};
use std::borrow::Cow;

/// Reads a plain telemetry message; `None` when the payload is not in the plain shape (valid
/// or not: the caller falls back to serde_json).
#[cfg(test)]
pub(crate) fn telemetry(payload: &[u8]) -> Option<Telemetry<'_>> {
    let mut t = Telemetry::default();
    telemetry_into(payload, &mut t).then_some(t)
}

/// [`telemetry`] into `t`, which must be empty ([`Telemetry::default`]); `false` when the
/// payload is not in the plain shape, `t` then holding part of it. Filled in place: a
/// `Telemetry` holds its few metrics and units inline, several hundred bytes that returning
/// it by value copied twice per message (issue 24).
pub(crate) fn telemetry_into<'a>(payload: &'a [u8], t: &mut Telemetry<'a>) -> bool {
    read_into(payload, t).is_some()
}

fn read_into<'a>(payload: &'a [u8], t: &mut Telemetry<'a>) -> Option<()> {
    // Checked once for the whole payload rather than per string (serde_json refuses a payload
    // that is not UTF-8 anyway: outside strings such bytes are syntax errors).
    let text = std::str::from_utf8(payload).ok()?;
    let mut s = Scan {
        text,
        b: payload,
        i: 0,
    };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    // Fields seen so far, one bit each: serde refuses a repeated field.
    let mut seen = 0u8;
    loop {
        let key = s.string()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        let bit = match key {
            "ts" => 1,
            "seq" => 2,
            "stream" => 4,
            "units" => 8,
            "metrics" => 16,
            "replayed" => 32,
            "from" => 64,
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match bit {
            1 => t.ts = s.or_null(Scan::signed)?,
            2 => t.seq = s.or_null(Scan::unsigned)?,
            4 => t.stream = s.or_null(Scan::text)?,
            8 => s.map(&mut t.units, Scan::text)?,
            16 => s.map(&mut t.metrics, Scan::metric)?,
            32 => t.replayed = s.boolean()?,
            _ => t.from = s.or_null(Scan::text)?,
        }
        s.ws();
        match s.next()? {
            b',' => s.ws(),
            b'}' => break,
            _ => return None,
        }
    }
    s.ws();
    (s.i == s.b.len() && seen & 16 != 0).then_some(())
}

/// Powers of ten a decimal of at most [`MAX_DIGITS`] digits is divided by: all exact in an
/// f64, so the quotient is the correctly rounded value, as serde_json computes it.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Digits of a decimal read here: below 2^53, so its significand is exact in an f64.
const MAX_DIGITS: usize = 15;

/// Digits of an integer read here: no overflow of u64 or i64.
const MAX_INT_DIGITS: usize = 18;

/// A cursor over the payload.
struct Scan<'a> {
    /// The payload, known to be UTF-8.
    text: &'a str,
    /// The same bytes.
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// `word` exactly (`true`, `false`, `null`); the caller checks what follows.
    fn literal(&mut self, word: &[u8]) -> bool {
        let hit = self.b.get(self.i..self.i + word.len()) == Some(word);
        if hit {
            self.i += word.len();
        }
        hit
    }

    /// `null` as `None`, else the value `read` reads.
    fn or_null<T>(&mut self, read: fn(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.literal(b"null") {
            Some(None)
        } else {
            read(self).map(Some)
        }
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.literal(b"true") {
            Some(true)
        } else if self.literal(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// A string without escapes or control characters, borrowed from the payload.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|&c| matches!(c, b'"' | b'\\' | 0..=0x1f))?;
        self.i = start + len;
        self.eat(b'"')?;
        // Both ends are next to a `"`, so on character boundaries.
        self.text.get(start..start + len)
    }

    fn text(&mut self) -> Option<Text<'a>> {
        self.string().map(|s| Text(Cow::Borrowed(s)))
    }

    /// Up to [`MAX_INT_DIGITS`] digits without a leading zero: (value, digits).
    fn digits(&mut self) -> Option<(u64, usize)> {
        let start = self.i;
        let mut n = 0u64;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start == MAX_INT_DIGITS {
                return None;
            }
            n = n * 10 + u64::from(c - b'0');
            self.i += 1;
        }
        let len = self.i - start;
        // serde_json refuses `01`; a lone `0` is fine.
        (len == 1 || (len > 1 && self.b[start] != b'0')).then_some((n, len))
    }

    /// An integer: a following `.`, `e` or `E` makes it a float, which serde refuses here.
    fn integer(&mut self) -> Option<(bool, u64)> {
        let negative = self.peek() == Some(b'-');
        self.i += usize::from(negative);
        let (n, _) = self.digits()?;
        // serde_json reads `-0` as the float -0.0.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) || (negative && n == 0) {
            return None;
        }
        Some((negative, n))
    }

    fn signed(&mut self) -> Option<i64> {
        let (negative, n) = self.integer()?;
        let n = i64::try_from(n).ok()?;
        Some(if negative { -n } else { n })
    }

    fn unsigned(&mut self) -> Option<u64> {
        match self.integer()? {
            (false, n) => Some(n),
            (true, _) => None,
        }
    }

    /// A metric value: `true`, `false`, a string, an integer or a decimal without exponent.
    fn metric(&mut self) -> Option<Metric<'a>> {
        match self.peek()? {
            b'"' => self.string().map(|s| Metric::Text(Cow::Borrowed(s))),
            b't' | b'f' => self.boolean().map(Metric::Bool),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Metric<'a>> {
        let negative = self.peek() == Some(b'-');
        self.i += usize::from(negative);
        let (whole, whole_digits) = self.digits()?;
        match self.peek() {
            Some(b'.') => {
                self.i += 1;
                let start = self.i;
                let mut significand = whole;
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    if whole_digits + (self.i - start) >= MAX_DIGITS {
                        return None;
                    }
                    significand = significand * 10 + u64::from(c - b'0');
                    self.i += 1;
                }
                let scale = *POW10.get(self.i - start).filter(|_| self.i > start)?;
                if matches!(self.peek(), Some(b'e' | b'E')) {
                    return None;
                }
                // Both exact, so one correctly rounded division: serde_json's value.
                let f = significand as f64 / scale;
                Some(Metric::Float(if negative { -f } else { f }))
            }
            Some(b'e' | b'E') => None,
            _ if negative && whole == 0 => None,
            _ => {
                let n = i64::try_from(whole).ok()?;
                Some(Metric::Int(if negative { -n } else { n }))
            }
        }
    }

    /// An object of names to values read by `value` into `out` (empty, a field seen once), as
    /// [`Sorted`] holds it. Filled in place: a `Sorted` holds a few pairs inline, a few hundred
    /// bytes that returning it by value copied.
    fn map<T>(&mut self, out: &mut Sorted<'a, T>, value: fn(&mut Self) -> Option<T>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        let pairs = &mut out.0;
        loop {
            let name = self.text()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            pairs.push((name, value(self)?));
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => {
                    Sorted::sort(pairs);
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn same_metric(a: &Metric<'_>, b: &Metric<'_>) -> bool {
        match (a, b) {
            (Metric::Float(x), Metric::Float(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    /// This reader's answer for `payload` agrees with serde_json's: `None` (serde_json
    /// decides), or serde_json accepts it too with the same content. Returns whether it read it.
    fn agrees(payload: &str) -> bool {
        let Some(ours) = telemetry(payload.as_bytes()) else {
            return false;
        };
        let theirs: Telemetry<'_> = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("read {payload} that serde_json refuses: {e}"));
        assert_eq!(ours.ts, theirs.ts, "{payload}");
        assert_eq!(ours.seq, theirs.seq, "{payload}");
        assert_eq!(ours.stream, theirs.stream, "{payload}");
        assert_eq!(ours.replayed, theirs.replayed, "{payload}");
        assert_eq!(ours.from, theirs.from, "{payload}");
        let units = |t: &Telemetry<'_>| -> Vec<(String, String)> {
            t.units
                .0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(units(&ours), units(&theirs), "{payload}");
        assert_eq!(ours.metrics.0.len(), theirs.metrics.0.len(), "{payload}");
        for ((n, m), (tn, tm)) in ours.metrics.0.iter().zip(&theirs.metrics.0) {
            assert_eq!(n, tn, "{payload}");
            assert!(same_metric(m, tm), "{payload}: {m:?} vs {tm:?}");
        }
        true
    }

    #[test]
    fn reads_the_plain_shape_as_serde_json_does() {
        let plain = [
            r#"{"ts":1700000000123,"seq":42,"stream":"grease_trap","metrics":{"level":1.5,"battery":90}}"#,
            r#"{"ts":1000,"seq":3,"stream":"grease_trap","units":{"level":"cm"},"metrics":{"level":41.2,"battery":88}}"#,
            r#" { "metrics" : { "x" : -0.0 , "y" : -12.25 , "z" : 0 } , "ts" : -5 } "#,
            "{\n\t\"metrics\":{\"on\":true,\"off\":false,\"mode\":\"eco\",\"t\":\"été\"}\r\n}",
            r#"{"metrics":{},"replayed":true}"#,
            r#"{"metrics":{"x":1},"from":"r1/trap1","replayed":false,"ts":null,"seq":null}"#,
            r#"{"metrics":{"x":1},"stream":null,"units":{}}"#,
            r#"{"metrics":{"x":1,"x":2,"b":3,"a":4}}"#,
            r#"{"metrics":{"x":1},"units":{"x":"cm","x":"mm"}}"#,
            r#"{"metrics":{"big":999999999999999999,"neg":-999999999999999999,"f":99999999999999.9}}"#,
            r#"{"metrics":{"f":0.00000000000001,"g":123456789012345,"h":0.1}}"#,
        ];
        for p in plain {
            assert!(agrees(p), "not read: {p}");
        }
    }

    /// Everything outside the plain shape is left to serde_json, valid or not.
    #[test]
    fn leaves_everything_else_to_serde_json() {
        let others = [
            r#"{"metrics":{"a\u0041":3}}"#,
            r#"{"metrics":{"x":"a\"b"}}"#,
            r#"{"metrics":{"x":1e3}}"#,
            r#"{"metrics":{"x":1.5E3}}"#,
            r#"{"metrics":{"x":-0}}"#,
            r#"{"metrics":{"x":01}}"#,
            r#"{"metrics":{"x":1.}}"#,
            r#"{"metrics":{"x":.5}}"#,
            r#"{"metrics":{"x":+1}}"#,
            r#"{"metrics":{"x":1234567890123456789}}"#,
            r#"{"metrics":{"x":18446744073709551615}}"#,
            r#"{"metrics":{"x":1234567890.1234567}}"#,
            r#"{"metrics":{"x":null}}"#,
            r#"{"metrics":{"x":[1]}}"#,
            r#"{"metrics":{"x":{"y":1}}}"#,
            r#"{"metrics":{"x":1,}}"#,
            r#"{"metrics":{"x":1}"#,
            r#"{"metrics":"x"}"#,
            r#"{"metrics":null}"#,
            r#"{"metrics":{"x":1},"extra":1}"#,
            r#"{"metrics":{"x":1},"metrics":{"y":1}}"#,
            r#"{"ts":1}"#,
            r#"{}"#,
            r#"{"metrics":{"x":1},"units":{"x":5}}"#,
            r#"{"metrics":{"x":1},"units":null}"#,
            r#"{"metrics":{"x":1},"ts":-0}"#,
            r#"{"metrics":{"x":1},"seq":-1}"#,
            r#"{"metrics":{"x":1},"ts":1.5}"#,
            r#"{"metrics":{"x":1},"ts":1e3}"#,
            r#"{"metrics":{"x":1},"replayed":null}"#,
            r#"{"metrics":{"x":1},"replayed":"yes"}"#,
            r#"{"metrics":{"x":1}} trailing"#,
            r#"{"metrics":{"x":truex}}"#,
            "{\"metrics\":{\"x\":\"tab\there\"}}",
            "\u{feff}{\"metrics\":{\"x\":1}}",
            r#"{not json"#,
            r#"[]"#,
            r#"null"#,
            "",
        ];
        for p in others {
            assert!(telemetry(p.as_bytes()).is_none(), "read: {p}");
        }
        assert!(telemetry(b"{\"metrics\":{\"x\":\"\xff\"}}").is_none());
        // Every prefix of a plain message is refused by serde_json, so left to it.
        let full = r#"{"ts":1700000000123,"seq":42,"stream":"grease_trap","units":{"level":"cm"},"metrics":{"level":-1.5,"ok":true,"battery":90}}"#;
        for end in 0..full.len() {
            assert!(!agrees(&full[..end]), "read the prefix {}", &full[..end]);
        }
    }

    /// Random messages, plain and not: whatever is read agrees with serde_json, and every
    /// plain one is read. Numbers cover the decimal shapes sensors send and the edges of
    /// what is read here (15 significant digits, 18-digit integers, leading zeros).
    #[test]
    fn random_messages_agree_with_serde_json() {
        let mut rng = StdRng::seed_from_u64(24);
        let mut read = 0;
        for _ in 0..30_000 {
            let mut plain = true;
            let number = |rng: &mut StdRng, plain: &mut bool| -> String {
                let sign = if rng.random_bool(0.3) { "-" } else { "" };
                let whole_digits = rng.random_range(1..=19usize);
                let frac_digits = if rng.random_bool(0.6) {
                    rng.random_range(0..=16usize)
                } else {
                    0
                };
                let d = |n: usize, rng: &mut StdRng| -> String {
                    (0..n)
                        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                        .collect()
                };
                let mut whole = d(whole_digits, rng);
                if rng.random_bool(0.5) {
                    whole = whole.trim_start_matches('0').to_string();
                    if whole.is_empty() {
                        whole = "0".into();
                    }
                }
                let leading_zero = whole.len() > 1 && whole.starts_with('0');
                let text = if frac_digits > 0 || rng.random_bool(0.05) {
                    format!("{sign}{whole}.{}", d(frac_digits, rng))
                } else {
                    format!("{sign}{whole}")
                };
                let exp = rng.random_bool(0.05);
                let digits = whole.len() + frac_digits;
                let is_float = text.contains('.');
                let zero = text.trim_start_matches('-').bytes().all(|b| b == b'0');
                if leading_zero
                    || exp
                    || (is_float && (digits > MAX_DIGITS || frac_digits == 0))
                    || (!is_float && (whole.len() > MAX_INT_DIGITS || (sign == "-" && zero)))
                {
                    *plain = false;
                }
                if exp {
                    format!("{text}e{}", rng.random_range(-5..5))
                } else {
                    text
                }
            };
            let n = rng.random_range(0..5);
            let metrics: Vec<String> = (0..n)
                .map(|i| {
                    let v = match rng.random_range(0..10) {
                        0 => "true".to_string(),
                        1 => "\"eco\"".to_string(),
                        _ => number(&mut rng, &mut plain),
                    };
                    format!("\"m{}\":{v}", i % 3)
                })
                .collect();
            let ws = if rng.random_bool(0.2) { " " } else { "" };
            let mut fields = vec![format!(
                "\"metrics\":{ws}{{{}}}",
                metrics.join(&format!(",{ws}"))
            )];
            if rng.random_bool(0.7) {
                fields.push(format!(
                    "\"ts\":{}",
                    rng.random_range(-1000..2_000_000_000_000i64)
                ));
            }
            if rng.random_bool(0.7) {
                fields.push(format!("\"seq\":{}", rng.random_range(0..1_000_000u64)));
            }
            if rng.random_bool(0.5) {
                fields.push("\"stream\":\"grease_trap\"".into());
            }
            if rng.random_bool(0.3) {
                fields.push("\"units\":{\"m0\":\"cm\"}".into());
            }
            if rng.random_bool(0.1) {
                fields.push("\"replayed\":true".into());
            }
            if rng.random_bool(0.05) {
                fields.push("\"ts\":1".into());
                plain = false;
            }
            let i = rng.random_range(0..fields.len());
            let last = fields.len() - 1;
            fields.swap(i, last);
            let payload = format!("{{{}}}", fields.join(&format!(",{ws}")));
            let got = agrees(&payload);
            assert!(got || !plain, "plain message not read: {payload}");
            read += usize::from(got);
        }
        assert!(read > 10_000, "only {read} read");
    }
}
