//! The all-in-one binary's tests: one test binary, sharing one harness.

mod connections;
mod cors;
mod first_start;
mod harness;
mod limits;
mod passwords;
