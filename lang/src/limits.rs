//! The sizes a program may have. The checker rejects programs beyond them,
//! so the runtime can size its tables (and index types) once.

/// Most `<metric>` elements.
pub const MAX_METRICS: usize = 64;
/// Most `<feature>` elements.
pub const MAX_FEATURES: usize = 256;
/// Most `<statedef>` elements.
pub const MAX_STATES: usize = 256;
/// Most `<table>` elements.
pub const MAX_TABLES: usize = 64;
/// Most `<event>` elements.
pub const MAX_EVENTS: usize = 256;
/// Most timeout classes (timeout events).
pub const MAX_TIMEOUT_CLASSES: usize = 64;
/// Most fields in one composite key.
pub const MAX_KEY_FIELDS: usize = 8;
/// Most `<condition>` elements in one `<state>`.
pub const MAX_CONDITIONS_PER_STATE: usize = 64;
/// Most `<use-metric>` elements in one `<state>`.
pub const MAX_USE_METRICS_PER_STATE: usize = 64;
/// Most XML nodes a program may have (bounds memory on hostile input).
pub const MAX_XML_NODES: u32 = 200_000;
/// Most errors (and, separately, warnings) reported; one more diagnostic
/// then says how many were left out.
pub const MAX_DIAGNOSTICS: usize = 1000;
