use smtp_core::{Envelope, Reply, Session, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn handle_etrn(&self, _: &mut Session, _: &mut Envelope) -> Reply {
        Reply::ok()
    }
}

fn main() {}
