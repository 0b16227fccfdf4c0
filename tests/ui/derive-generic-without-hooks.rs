use smtp_core::{Handler, SmtpHandler};

#[derive(SmtpHandler)]
struct Generic<T: Send + Sync + 'static> {
    inner: T,
}

fn assert_handler<H: Handler>(_: &H) {}

fn main() {
    assert_handler(&Generic { inner: 1u32 });
}
