//! The cutover-testapp binary.
fn main() {}
