//! Integration tests of cutover-bom, one module per area.

mod parsers_other;
