//! The votable crate's integration tests, in one binary (each test binary links DataFusion).

mod common;
mod real_files;
mod referees;
mod roundtrip;
mod writer;
