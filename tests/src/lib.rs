//! Harness for real servers; see README.
