use smtp_core::SmtpHandler;

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    #[smtp_core::auth_mechanism("X-TOKEN")]
    const TOKEN: &str = "token";
}

fn main() {}
