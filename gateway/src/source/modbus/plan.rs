//! Request planner: turns a register map into as few read requests as the limits allow.
//!
//! Registers of the same kind (function) are sorted by address and merged greedily while the
//! span stays within the per-request limit (125 registers / 2000 bits by protocol, lower if the
//! device says so) and the hole bridged between two wanted values is at most `max_gap`.
//! Reading a few unused registers is far cheaper than another round trip, above all on a
//! serial bus at 9600 baud; a gap limit keeps us off ranges that devices refuse to read.

use super::config::{DeviceConfig, RegisterConfig, RegisterKind};

/// Where one configured register sits inside a request's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Item {
    /// Index into the device's `registers`.
    pub register: usize,
    /// Offset of its first word/bit in the response.
    pub offset: u16,
}

/// One read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub kind: RegisterKind,
    pub start: u16,
    /// Registers or bits to read.
    pub count: u16,
    pub items: Vec<Item>,
}

/// Limits for the planner, from the device config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub merge: bool,
    pub max_gap: u16,
    pub max_registers: u16,
    pub max_bits: u16,
}

impl Limits {
    pub(crate) fn of(d: &DeviceConfig) -> Limits {
        Limits {
            merge: d.merge,
            max_gap: d.max_gap,
            max_registers: d.max_registers,
            max_bits: d.max_bits,
        }
    }
}

fn width(r: &RegisterConfig) -> u32 {
    if r.kind.is_bit() {
        1
    } else {
        u32::from(r.data_type.words())
    }
}

/// Plans the requests for `registers`; every register lands in exactly one block.
pub(crate) fn plan(registers: &[RegisterConfig], limits: Limits) -> Vec<Block> {
    let mut order: Vec<usize> = (0..registers.len()).collect();
    order.sort_by_key(|&i| {
        let r = &registers[i];
        (r.kind, r.address, std::cmp::Reverse(width(r)))
    });
    let mut blocks: Vec<Block> = Vec::new();
    // Exclusive end of the last block, as u32 so address 65535 + 2 words cannot overflow.
    let mut end: u32 = 0;
    for i in order {
        let r = &registers[i];
        let (a, w) = (u32::from(r.address), width(r));
        let limit = u32::from(if r.kind.is_bit() {
            limits.max_bits
        } else {
            limits.max_registers
        });
        if let Some(b) = blocks.last_mut() {
            let start = u32::from(b.start);
            let new_end = end.max(a + w);
            if limits.merge
                && b.kind == r.kind
                && a <= end + u32::from(limits.max_gap)
                && new_end - start <= limit
            {
                end = new_end;
                // Both fit in u16: the span is at most `limit` (<= 2000) and a >= start.
                b.count = u16::try_from(end - start).unwrap_or(u16::MAX);
                b.items.push(Item {
                    register: i,
                    offset: u16::try_from(a - start).unwrap_or(u16::MAX),
                });
                continue;
            }
        }
        end = a + w;
        blocks.push(Block {
            kind: r.kind,
            start: r.address,
            count: u16::try_from(w).unwrap_or(1),
            items: vec![Item {
                register: i,
                offset: 0,
            }],
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::super::config::{DataType, WordOrder};
    use super::*;

    fn reg(kind: RegisterKind, address: u16, data_type: DataType) -> RegisterConfig {
        RegisterConfig {
            metric: format!("{kind:?}{address}"),
            kind,
            address,
            data_type,
            order: WordOrder::ABCD,
            scale: 1.0,
            offset: 0.0,
            unit: String::new(),
        }
    }

    const LIM: Limits = Limits {
        merge: true,
        max_gap: 4,
        max_registers: 125,
        max_bits: 2000,
    };

    fn spans(b: &[Block]) -> Vec<(RegisterKind, u16, u16)> {
        b.iter().map(|b| (b.kind, b.start, b.count)).collect()
    }

    use DataType::*;
    use RegisterKind::*;

    #[test]
    fn adjacent_registers_become_one_request() {
        let regs = vec![
            reg(Holding, 2, U32),
            reg(Holding, 0, U16),
            reg(Holding, 1, I16),
            reg(Holding, 4, F32),
        ];
        let b = plan(&regs, LIM);
        assert_eq!(spans(&b), [(Holding, 0, 6)]);
        // Items carry their offsets in the response, in address order.
        let offs: Vec<(usize, u16)> = b[0].items.iter().map(|i| (i.register, i.offset)).collect();
        assert_eq!(offs, [(1, 0), (2, 1), (0, 2), (3, 4)]);
    }

    #[test]
    fn gaps_up_to_max_gap_are_bridged_and_larger_ones_split() {
        let regs = vec![
            reg(Holding, 0, U16),
            reg(Holding, 5, U16),  // gap of 4 after register 0: bridged
            reg(Holding, 11, U16), // gap of 5: new request
        ];
        assert_eq!(
            spans(&plan(&regs, LIM)),
            [(Holding, 0, 6), (Holding, 11, 1)]
        );
    }

    #[test]
    fn the_125_register_limit_splits_requests() {
        // 100 u32 values back to back: 200 registers -> 125 + 75, never a value cut in two.
        let regs: Vec<_> = (0..100).map(|i| reg(Input, i * 2, U32)).collect();
        let b = plan(&regs, LIM);
        assert_eq!(spans(&b), [(Input, 0, 124), (Input, 124, 76)]);
        assert!(b.iter().all(|b| b.count <= 125));
        assert_eq!(b.iter().map(|b| b.items.len()).sum::<usize>(), 100);
        // A device limit lower than the protocol's is honoured.
        let small = Limits {
            max_registers: 10,
            ..LIM
        };
        assert!(plan(&regs, small).iter().all(|b| b.count <= 10));
    }

    #[test]
    fn bits_respect_the_2000_limit() {
        let regs: Vec<_> = (0..2500).map(|i| reg(Coil, i, U16)).collect();
        let b = plan(&regs, LIM);
        assert_eq!(spans(&b), [(Coil, 0, 2000), (Coil, 2000, 500)]);
    }

    #[test]
    fn kinds_never_share_a_request() {
        let regs = vec![
            reg(Coil, 0, U16),
            reg(Holding, 0, U16),
            reg(Discrete, 1, U16),
            reg(Input, 1, U16),
            reg(Holding, 1, U16),
            reg(Coil, 3, U16),
        ];
        assert_eq!(
            spans(&plan(&regs, LIM)),
            [
                (Holding, 0, 2),
                (Input, 1, 1),
                (Coil, 0, 4),
                (Discrete, 1, 1)
            ]
        );
    }

    #[test]
    fn overlapping_registers_share_words() {
        // A u32 at 10 and a u16 view of its high word.
        let regs = vec![reg(Holding, 10, U32), reg(Holding, 10, U16)];
        let b = plan(&regs, LIM);
        assert_eq!(spans(&b), [(Holding, 10, 2)]);
        assert!(b[0].items.iter().all(|i| i.offset == 0));
    }

    #[test]
    fn merge_off_gives_one_request_per_register() {
        let regs: Vec<_> = (0..20).map(|i| reg(Holding, i, U16)).collect();
        let off = Limits {
            merge: false,
            ..LIM
        };
        assert_eq!(plan(&regs, off).len(), 20);
        assert_eq!(plan(&regs, LIM).len(), 1);
    }

    #[test]
    fn top_of_the_address_space_does_not_overflow() {
        let regs = vec![reg(Holding, 65534, U32), reg(Holding, 65533, U16)];
        assert_eq!(spans(&plan(&regs, LIM)), [(Holding, 65533, 3)]);
    }
}
