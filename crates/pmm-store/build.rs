//! Rebuilds the crate when a migration file is added, changed or removed, because
//! `embed_migrations!` only sees the directory at compile time.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
