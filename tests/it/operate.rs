//! Filled by the operate work.
