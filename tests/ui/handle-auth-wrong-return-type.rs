use smtp_core::{AuthServer, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn handle_auth(&self, _: &mut AuthServer<'_>, _: &[String]) -> bool {
        false
    }
}

fn main() {}
