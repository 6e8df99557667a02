//! Integration tests: the real router on a loopback port over a real SQLite file, driven over
//! HTTP. One module per part of the contract.

mod support;

mod accounts;
mod audit;
mod binary;
mod clients;
mod demo;
mod email_flows;
mod errors;
mod everywhere;
mod gateway;
mod global_revocation;
mod logout;
mod machine;
mod nodes;
mod notify;
mod oidc;
mod ops;
mod redirects;
mod relying;
mod sessions;
mod shortcuts;
mod ssf;
mod ssf_received;
mod tokens;
