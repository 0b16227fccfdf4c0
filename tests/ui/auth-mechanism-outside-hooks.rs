use smtp_core::{AuthArgs, AuthResult, AuthServer, auth_mechanism};

struct Handler;

impl Handler {
    #[auth_mechanism("X-TOKEN")]
    async fn token(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }
}

fn main() {
    let _ = Handler::token;
}
