//! The metric-operation contract (being written).
