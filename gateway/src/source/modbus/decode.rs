//! Pure register decoding: words in, a typed, scaled, unit-converted value out.
//!
//! No I/O here, so every type x order combination is tested exhaustively below.

use super::config::{DataType, RegisterConfig, WordOrder};
use crate::reading::Value;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeError {
    #[error("needs {need} registers, got {got}")]
    Short { need: usize, got: usize },
    #[error("value is not a finite number")]
    NonFinite,
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
}

/// A decoded register value before scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw {
    Int(i64),
    Float(f64),
}

/// The value's big-endian bytes (A B C D, or A B for 16-bit types) from the registers as sent.
fn big_endian_bytes(words: &[u16], ty: DataType, order: WordOrder) -> Result<[u8; 4], DecodeError> {
    let need = usize::from(ty.words());
    let w = words.get(..need).ok_or(DecodeError::Short {
        need,
        got: words.len(),
    })?;
    let swap_bytes = matches!(order, WordOrder::BADC | WordOrder::DCBA);
    let fix = |x: u16| if swap_bytes { x.swap_bytes() } else { x };
    Ok(match w {
        [a] => {
            let [h, l] = fix(*a).to_be_bytes();
            [h, l, 0, 0]
        }
        [w0, w1] => {
            let swap_words = matches!(order, WordOrder::CDAB | WordOrder::DCBA);
            let (hi, lo) = if swap_words { (*w1, *w0) } else { (*w0, *w1) };
            let [a, b] = fix(hi).to_be_bytes();
            let [c, d] = fix(lo).to_be_bytes();
            [a, b, c, d]
        }
        _ => unreachable!("DataType::words() is 1 or 2"),
    })
}

/// Decodes the first `ty.words()` registers of `words`.
pub fn decode_raw(words: &[u16], ty: DataType, order: WordOrder) -> Result<Raw, DecodeError> {
    let b = big_endian_bytes(words, ty, order)?;
    let half = [b[0], b[1]];
    Ok(match ty {
        DataType::U16 => Raw::Int(i64::from(u16::from_be_bytes(half))),
        DataType::I16 => Raw::Int(i64::from(i16::from_be_bytes(half))),
        DataType::U32 => Raw::Int(i64::from(u32::from_be_bytes(b))),
        DataType::I32 => Raw::Int(i64::from(i32::from_be_bytes(b))),
        DataType::F32 => {
            let f = f32::from_be_bytes(b);
            if !f.is_finite() {
                return Err(DecodeError::NonFinite);
            }
            Raw::Float(f64::from(f))
        }
    })
}

/// Applies `raw * scale + offset`, then the unit conversion. Integers stay integers when
/// nothing changes them, so a counter is written as an integer field.
pub fn scale(
    raw: Raw,
    scale: f64,
    offset: f64,
    unit: &str,
) -> Result<(Value, &'static str), DecodeError> {
    let conv =
        crate::units::canonical(unit).ok_or_else(|| DecodeError::UnknownUnit(unit.into()))?;
    let identity = scale == 1.0 && offset == 0.0 && conv.factor == 1.0 && conv.offset == 0.0;
    let value = match raw {
        Raw::Int(i) if identity => Value::Int(i),
        Raw::Int(i) => Value::Float(conv.apply(i as f64 * scale + offset)),
        Raw::Float(f) => Value::Float(conv.apply(f * scale + offset)),
    };
    if let Value::Float(f) = value
        && !f.is_finite()
    {
        return Err(DecodeError::NonFinite);
    }
    Ok((value, conv.canonical))
}

/// Decodes one configured register from the words starting at its address.
pub(crate) fn decode_register(
    reg: &RegisterConfig,
    words: &[u16],
) -> Result<(Value, &'static str), DecodeError> {
    let raw = decode_raw(words, reg.data_type, reg.order)?;
    scale(raw, reg.scale, reg.offset, &reg.unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::*;
    use WordOrder::*;

    /// Registers as a device in `order` would send the big-endian bytes `b`.
    fn encode(b: [u8; 4], ty: DataType, order: WordOrder) -> Vec<u16> {
        let [a, bb, c, d] = b;
        if ty.words() == 1 {
            return vec![match order {
                ABCD | CDAB => u16::from_be_bytes([a, bb]),
                BADC | DCBA => u16::from_be_bytes([bb, a]),
            }];
        }
        let x = match order {
            ABCD => [a, bb, c, d],
            CDAB => [c, d, a, bb],
            BADC => [bb, a, d, c],
            DCBA => [d, c, bb, a],
        };
        vec![
            u16::from_be_bytes([x[0], x[1]]),
            u16::from_be_bytes([x[2], x[3]]),
        ]
    }

    fn pad(h: [u8; 2]) -> [u8; 4] {
        [h[0], h[1], 0, 0]
    }

    #[test]
    fn every_type_in_every_order_decodes_to_the_value() {
        let cases: Vec<(DataType, [u8; 4], Raw)> = vec![
            (U16, pad(54321u16.to_be_bytes()), Raw::Int(54321)),
            (U16, pad(0x0102u16.to_be_bytes()), Raw::Int(0x0102)),
            (I16, pad((-12345i16).to_be_bytes()), Raw::Int(-12345)),
            (I16, pad(i16::MIN.to_be_bytes()), Raw::Int(-32768)),
            (U32, 3_000_000_000u32.to_be_bytes(), Raw::Int(3_000_000_000)),
            (U32, 0x0102_0304u32.to_be_bytes(), Raw::Int(0x0102_0304)),
            (I32, (-123_456_789i32).to_be_bytes(), Raw::Int(-123_456_789)),
            (I32, i32::MIN.to_be_bytes(), Raw::Int(i64::from(i32::MIN))),
            (
                F32,
                (-1234.5678f32).to_be_bytes(),
                Raw::Float(f64::from(-1234.5678f32)),
            ),
            (
                F32,
                1.0e-3f32.to_be_bytes(),
                Raw::Float(f64::from(1.0e-3f32)),
            ),
        ];
        for (ty, bytes, want) in cases {
            for order in [ABCD, CDAB, BADC, DCBA] {
                let words = encode(bytes, ty, order);
                assert_eq!(
                    decode_raw(&words, ty, order),
                    Ok(want),
                    "{ty:?} {order:?} {words:04x?}"
                );
            }
        }
    }

    #[test]
    fn orders_are_the_documented_permutations() {
        // 0x11223344 as sent in each order.
        let w = |order| decode_raw(&encode([0x11, 0x22, 0x33, 0x44], U32, order), U32, order);
        assert_eq!(
            encode([0x11, 0x22, 0x33, 0x44], U32, ABCD),
            [0x1122, 0x3344]
        );
        assert_eq!(
            encode([0x11, 0x22, 0x33, 0x44], U32, CDAB),
            [0x3344, 0x1122]
        );
        assert_eq!(
            encode([0x11, 0x22, 0x33, 0x44], U32, BADC),
            [0x2211, 0x4433]
        );
        assert_eq!(
            encode([0x11, 0x22, 0x33, 0x44], U32, DCBA),
            [0x4433, 0x2211]
        );
        for o in [ABCD, CDAB, BADC, DCBA] {
            assert_eq!(w(o), Ok(Raw::Int(0x1122_3344)));
        }
        // The wrong order gives a different number (what Telegraf users see as "scrambled").
        assert_eq!(
            decode_raw(&[0x3344, 0x1122], U32, ABCD),
            Ok(Raw::Int(0x3344_1122))
        );
    }

    #[test]
    fn short_input_and_non_finite_floats_are_errors() {
        assert_eq!(
            decode_raw(&[1], U32, ABCD),
            Err(DecodeError::Short { need: 2, got: 1 })
        );
        assert_eq!(
            decode_raw(&[], U16, ABCD),
            Err(DecodeError::Short { need: 1, got: 0 })
        );
        assert_eq!(
            decode_raw(&[0x7fc0, 0], F32, ABCD),
            Err(DecodeError::NonFinite)
        );
        assert_eq!(
            decode_raw(&[0x7f80, 0], F32, ABCD),
            Err(DecodeError::NonFinite)
        );
    }

    #[test]
    fn scale_offset_and_unit_apply_in_that_order() {
        assert_eq!(scale(Raw::Int(7), 1.0, 0.0, ""), Ok((Value::Int(7), "")));
        assert_eq!(
            scale(Raw::Int(7), 1.0, 0.0, "mm"),
            Ok((Value::Int(7), "mm"))
        );
        // 412 in units of 0.1 cm, plus 2 cm, to mm: (41.2 + 2) * 10.
        let (v, u) = scale(Raw::Int(412), 0.1, 2.0, "cm").unwrap();
        assert_eq!(u, "mm");
        assert!((v.as_f64().unwrap() - 432.0).abs() < 1e-9);
        let (v, u) = scale(Raw::Float(212.0), 1.0, 0.0, "F").unwrap();
        assert_eq!(u, "C");
        assert!((v.as_f64().unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(
            scale(Raw::Int(1), 1.0, 0.0, "furlong"),
            Err(DecodeError::UnknownUnit("furlong".into()))
        );
        assert_eq!(
            scale(Raw::Float(f64::from(f32::MAX)), 1e300, 0.0, ""),
            Err(DecodeError::NonFinite)
        );
    }
}
