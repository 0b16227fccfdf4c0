use smtp_core::SmtpHandler;

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Default for Handler {
    fn default() -> Self {
        Handler
    }
}

fn main() {}
