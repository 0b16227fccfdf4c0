use smtp_core::{Envelope, Reply, Session, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn handle_rcpt(
        &self,
        _: &mut Session,
        _: &mut Envelope,
        address: String,
        _: &[String],
    ) -> Reply {
        Reply::new(250, address)
    }
}

fn main() {}
