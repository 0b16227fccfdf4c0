use smtp_core::{AuthArgs, AuthResult, AuthServer, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn auth_X_TOKEN(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }

    #[smtp_core::auth_mechanism("X_TOKEN")]
    async fn token(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }
}

fn main() {}
