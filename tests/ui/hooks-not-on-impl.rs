#[smtp_core::hooks]
struct Handler;

fn main() {}
