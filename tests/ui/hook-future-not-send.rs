use smtp_core::{Envelope, Reply, Session, SmtpHandler};

#[derive(SmtpHandler)]
struct Handler;

#[smtp_core::hooks]
impl Handler {
    async fn handle_data(&self, _: &mut Session, _: &mut Envelope) -> Reply {
        let counter = std::rc::Rc::new(1);
        std::future::ready(()).await;
        Reply::new(250, counter.to_string())
    }
}

fn main() {}
