//! The cutover binary.
fn main() {}
