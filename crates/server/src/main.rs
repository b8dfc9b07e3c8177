//! The `switchboard` command line.
fn main() {}
