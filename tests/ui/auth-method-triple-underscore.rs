use smtp_core::{AuthResult, AuthServer, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn auth_X___TOKEN(&self, _: &mut AuthServer<'_>, _: &[String]) -> AuthResult {
        AuthResult::failure()
    }
}

fn main() {}
