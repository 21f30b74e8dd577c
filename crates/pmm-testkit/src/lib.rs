//! Test harness: an anvil devnet with the project's fixture pools, funded accounts, and a fresh
//! Postgres database and Redis namespace per test. Every process and database it creates is
//! removed on drop, panics included.
//!
//! The fixture contracts (tests/fixtures/contracts) are the project's own Solidity implementation
//! of DODO V2's interfaces and PMM math; [`contracts`] binds their committed artifacts and
//! [`Devnet`] deploys them.

pub mod anvil;
pub mod contracts;
pub mod db;
pub mod devnet;
pub mod error;
pub mod templates;

pub use devnet::{
    DevAccount, Devnet, DevnetOptions, DppParams, DvmParams, PoolParams, Routers, WethUsdcPools,
};
pub use error::{Result, TestkitError};
pub use pmm_core::schema::PoolType;
pub use templates::{DeployedTemplate, Template};
