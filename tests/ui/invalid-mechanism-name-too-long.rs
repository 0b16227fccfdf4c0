use smtp_core::{AuthArgs, AuthResult, AuthServer, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    #[smtp_core::auth_mechanism("X-MUCH-TOO-LONG-TOKEN-NAME")]
    async fn token(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }
}

fn main() {}
