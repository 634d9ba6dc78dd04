//! Crash-consistency harness for tidemark (issue: crash consistency).
//!
//! A seeded workload of several concurrent writers runs against a `Db` whose
//! object store is a [`tidemark::testing::FaultStore`]; the store crashes at a
//! chosen operation (or a new process takes over while the old one runs on as
//! a zombie), a new process recovers, and the [`oracle`] checks I2-I5 against
//! what was acknowledged.

pub mod clock;
pub mod config;
pub mod conformance;
pub mod db_api;
mod live;
pub mod liveness;
pub mod oracle;
pub mod reads;
mod recovery;
pub mod s3;
pub mod schedule;
pub mod shared;
pub mod workload;
mod writer;
