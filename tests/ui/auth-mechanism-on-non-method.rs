#[smtp_core::auth_mechanism("X-TOKEN")]
struct Token;

fn main() {}
