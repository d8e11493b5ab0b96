//! The migrations are embedded at compile time (`refinery::embed_migrations!` in schema.rs):
//! rebuild when one is added or changed, or the binaries would keep the old schema.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
