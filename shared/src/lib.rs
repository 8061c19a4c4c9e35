//! Chat types
