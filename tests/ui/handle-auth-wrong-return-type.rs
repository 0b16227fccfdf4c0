use smtp_core::{AuthArgs, AuthServer, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn handle_auth(&self, _: &mut AuthServer<'_>, _: &AuthArgs) -> bool {
        false
    }
}

fn main() {}
