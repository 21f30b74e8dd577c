//! Test harness: anvil devnet, fixture deployment, funded accounts, a fresh Postgres database and Redis namespace per test.
