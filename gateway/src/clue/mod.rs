//! Clues: what rules (and vision, and drone findings) tell the clue pool.
//!
//! `signal` is the contract between producers (rules engine, parking, camera health, drone
//! tasks) and the pool (storage, lifecycle, delivery). Producers never touch the pool directly.

pub mod signal;
