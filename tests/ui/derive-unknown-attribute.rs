use smtp_core::SmtpHandler;

#[derive(SmtpHandler)]
#[smtp(no_hooks)]
struct Handler;

fn main() {}
