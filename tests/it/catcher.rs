//! Filled by the catcher work.
