//! The revocation feed, in one home: what an entry is ([`entry`]), how a process follows the
//! feed ([`follow`]), the window relying services read ([`window`]) and how far each of their
//! streams has sent it ([`delivery`]). The store keeps the feed (`store::feed`); the node
//! protocol that proves it applied everywhere is `authority/sync.rs`.

pub mod delivery;
pub mod entry;
pub mod follow;
pub mod window;

pub use entry::{FeedEntry, Revocation};
