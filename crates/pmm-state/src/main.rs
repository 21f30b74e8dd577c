//! State bootstrapper (5704): Postgres migrations and Redis bootstrap.

fn main() {}
