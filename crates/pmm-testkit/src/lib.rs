//! Test harness: an anvil devnet with the project's fixture pools, funded accounts, and a fresh
//! Postgres database and Redis namespace per test. Every process and database it creates is
//! removed on drop, panics included.

pub mod db;
