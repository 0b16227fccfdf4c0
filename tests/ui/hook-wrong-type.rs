use smtp_core::{Envelope, RcptParams, Reply, Session, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn handle_rcpt(
        &self,
        _: &mut Session,
        _: &mut Envelope,
        address: String,
        _: &RcptParams,
    ) -> Reply {
        Reply::new(250, address)
    }
}

fn main() {}
