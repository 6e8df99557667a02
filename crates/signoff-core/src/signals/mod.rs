//! Shared Signals (OpenID SSF 1.0): signoff as a transmitter of security events to registered
//! clients. [`stream`]: the streams receivers configure (what they want, how it is delivered,
//! whether it flows); [`event`]: the events, as the claims of Security Event Tokens.

pub mod event;
pub mod stream;

pub use event::{Initiator, SecurityEvent};
pub use stream::{DeliveryMethod, SignalStream, StreamStatus};
