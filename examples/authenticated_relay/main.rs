//! An authenticated relay: AUTH against argon2 hashes in SQLite, then forward with lettre.
//!
//! ```sh
//! cargo run --example authenticated_relay -- users.sqlite add alice 'correct horse'
//! cargo run --example authenticated_relay -- users.sqlite serve 127.0.0.1:8587 127.0.0.1:25 cert.pem key.pem
//! ```
//! Without a certificate AUTH is offered in plaintext, which is only fit for loopback tests.

mod relay;

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: authenticated_relay DB add LOGIN PASSWORD | DB serve LISTEN UPSTREAM_HOST:PORT [CERT KEY]";
    let db = relay::UserDb::open(Path::new(args.first().ok_or(usage)?))?;
    match args.get(1).map(String::as_str) {
        Some("add") if args.len() == 4 => db.add_user(&args[2], &args[3]),
        Some("serve") if args.len() == 4 || args.len() == 6 => {
            let (host, port) = args[3].rsplit_once(':').ok_or(usage)?;
            let mut config = smtp_core::Config::default();
            match (args.get(4), args.get(5)) {
                (Some(cert), Some(key)) => {
                    config.tls = Some(smtp_core::TlsConfig::from_pem_files(cert, key)?)
                }
                _ => config.auth_require_tls = false,
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let server = relay::start(db, &args[2], (host, port.parse()?), config).await?;
                eprintln!("relay listening on {}", server.local_addr());
                tokio::signal::ctrl_c().await?;
                server.shutdown().await;
                Ok(())
            })
        }
        _ => Err(usage.into()),
    }
}
