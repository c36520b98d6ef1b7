//! cutover-views's integration tests (one test binary for the crate).

mod served_index;
mod views;
