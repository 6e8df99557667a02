//! Shared Signals (OpenID SSF 1.0): signoff as a transmitter of security events to registered
//! clients. [`stream`]: the streams receivers configure (what they want, how it is delivered,
//! whether it flows); [`event`]: the events, as the claims of Security Event Tokens; [`emit`]:
//! which stream is told what of a batch's changes, as outbox rows; [`upstream`]: signals
//! received from an upstream transmitter.

pub mod emit;
pub mod event;
pub mod stream;
pub mod upstream;

pub use emit::Change;
pub use event::{Initiator, SecurityEvent};
pub use stream::{DeliveryMethod, SignalStream, StreamStatus};
