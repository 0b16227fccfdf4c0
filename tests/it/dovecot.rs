//! Filled by the dovecot work.
