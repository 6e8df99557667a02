//! What signoff's SQL stores (`signoff-sqlite`, `signoff-postgres`) share, so the core knows no
//! SQL at all: the core records as rows of their one schema, read and written once here for
//! both dialects ([`columns`]). `tests/schema_parity.rs` migrates both databases and compares
//! their tables and columns, so the schema the mapping assumes is the same on both.

pub mod columns;
