//! The event layer's packet parser.
//!
//! It turns one captured frame into the typed [`Field`] values applications
//! select on and key by, without copying the frame.

pub mod field;

pub use field::{Field, FieldType};
