//! The mail catcher (`--handler capture`): a bounded message store and its HTTP API.
