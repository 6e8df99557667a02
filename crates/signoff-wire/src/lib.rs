//! The bytes a client sends, parsed. Every function here takes attacker-controlled input and
//! either returns a well-formed value or refuses it; none panics, loops without bound or
//! allocates more than a small multiple of its input. Each is driven by a `cargo fuzz` target
//! (`fuzz/fuzz_targets/`), and the server's extractors are thin adapters over them, so what is
//! fuzzed is what runs.

pub mod authorization;
pub mod body;
pub mod cookie;
pub mod forwarded;
pub mod position;
pub mod return_to;
