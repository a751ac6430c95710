//! The software metric engine (being written).
