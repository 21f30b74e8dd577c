//! Pure logic shared by every daemon: the normalized pool-state schema, exact DODO V2 PMM math,
//! policy evaluation, action and risk types, and config types. No I/O lives here.

pub mod agent;
pub mod config;
pub mod keys;
pub mod math;
pub mod policy;
pub mod schema;
pub mod templates;
