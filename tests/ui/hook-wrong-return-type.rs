use smtp_core::{Envelope, Session, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn handle_data(&self, _: &mut Session, _: &mut Envelope) -> String {
        "250 OK".to_owned()
    }
}

fn main() {}
