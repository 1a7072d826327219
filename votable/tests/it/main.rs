//! The votable crate's integration tests, in one binary (each test binary links DataFusion).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code may panic

mod common;
mod real_files;
mod referees;
mod roundtrip;
mod writer;
