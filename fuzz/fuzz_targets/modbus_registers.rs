//! Modbus replies as the poller sees them: the register words a device answered, decoded as
//! every data type in every word order, then scaled. Input: type byte, order byte, then
//! big-endian words. Must never panic; a value it returns must be finite.
#![no_main]

use gateway::reading::Value;
use gateway::source::modbus::decode::{decode_raw, scale};
use gateway::source::modbus::{DataType, WordOrder};
use libfuzzer_sys::fuzz_target;

const TYPES: [DataType; 5] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::F32,
];
const ORDERS: [WordOrder; 4] = [
    WordOrder::ABCD,
    WordOrder::CDAB,
    WordOrder::BADC,
    WordOrder::DCBA,
];

fuzz_target!(|data: &[u8]| {
    let [t, o, s, rest @ ..] = data else {
        return;
    };
    let ty = TYPES[*t as usize % TYPES.len()];
    let order = ORDERS[*o as usize % ORDERS.len()];
    let words: Vec<u16> = rest
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let Ok(raw) = decode_raw(&words, ty, order) else {
        return;
    };
    // A few realistic and a few hostile scale factors.
    let factor = [1.0, 0.1, -0.01, 1e30, 1e-30, f64::MAX][*s as usize % 6];
    if let Ok((value, _unit)) = scale(raw, factor, 0.0, "mm") {
        if let Value::Float(f) = value {
            assert!(
                f.is_finite(),
                "non-finite value {f} from {words:?} {ty:?} {order:?}"
            );
        }
    }
});
