use smtp_core::{AuthArgs, AuthResult, AuthServer, Envelope, Reply, Session, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn handle_dta(&self, _: &mut Session, _: &mut Envelope) -> Reply {
        Reply::ok()
    }

    fn handle_quit(&self, _: &mut Session, _: &mut Envelope) -> Reply {
        Reply::ok()
    }

    #[smtp_core::auth_mechanism("x-token")]
    async fn token(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }
}

fn main() {}
