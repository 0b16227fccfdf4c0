//! `smtpd --handler capture`: real clients (Python's smtplib, lettre) send through the binary,
//! and `curl` reads, deletes, streams and breaks the mail over the HTTP API.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::tls::Pki;
use crate::support::*;
use lettre::message::header::ContentType;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

/// A running catcher and the base URL of its API.
struct Catcher {
    smtpd: Smtpd,
    api: String,
}

impl Catcher {
    fn start(args: &[&str]) -> Catcher {
        let mut all = vec!["--handler", "capture", "--api-listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--auth-user", "ann:s3cret-pass", "--no-auth-require-tls"]);
        let smtpd = Smtpd::tcp(&all);
        let api = smtpd
            .started
            .iter()
            .find_map(|l| l.strip_prefix("smtpd API on "))
            .unwrap_or_else(|| panic!("no API address in {:?}", smtpd.started))
            .to_owned();
        Catcher { smtpd, api }
    }

    /// `curl -X method` on `path`, with `body` as data: the status and the body.
    async fn curl(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        tools::http(method, &format!("{}{path}", self.api), body).await
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.curl("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    async fn ids(&self) -> Vec<u64> {
        let list = self.get_json("/api/messages").await;
        let list = list.as_array().expect("a list");
        list.iter()
            .map(|m| m["id"].as_u64().expect("an id"))
            .collect()
    }

    /// Sends one message per subject with smtplib; one line per message: `sent` or the code
    /// the server refused it with (`closed` when it closed the connection).
    async fn smtplib(&self, options: &str, subjects: &[&str]) -> Vec<String> {
        let addr = self.smtpd.addr();
        let mut args = vec![addr.port().to_string(), options.to_owned()];
        args.extend(subjects.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = python(SMTPLIB, &args).await;
        assert!(ok, "smtplib: {stdout}{stderr}");
        stdout.lines().map(str::to_owned).collect()
    }
}

/// argv: port, options (`plain`, `rich`, `login`, `starttls:CA_FILE` (then login), or
/// `pad:N` for N bytes of body), subjects.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
port, options, subjects = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
for subject in subjects:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "app@example.com", "ann@example.com", subject
    if options == "rich":
        m.set_content("the text part")
        m.add_alternative("<p>the html part</p>", subtype="html")
        m.add_attachment(b"0123456789" * 10, maintype="application",
                         subtype="octet-stream", filename="report.bin")
    elif options.startswith("pad:"):
        m.set_content(("x" * 49 + "\n") * (int(options[4:]) // 50))
    else:
        m.set_content("hello")
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=10) as s:
            if options.startswith("starttls:"):
                s.starttls(context=ssl.create_default_context(cafile=options[9:]))
            if options == "login" or options.startswith("starttls:"):
                s.login("ann", "s3cret-pass")
            s.send_message(m, rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
        print("sent")
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
        print(e.smtp_code)
    except smtplib.SMTPRecipientsRefused as e:
        print(list(e.recipients.values())[0][0])
    except (smtplib.SMTPServerDisconnected, OSError):
        print("closed")
"#;

async fn lettre_send(addr: std::net::SocketAddr, subject: &str) {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .hello_name(ClientId::Domain("lettre.example".into()))
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let email = lettre::Message::builder()
        .from("App <app@example.com>".parse().unwrap())
        .to("Bob <bob@example.com>".parse().unwrap())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body("Hello from lettre".to_owned())
        .unwrap();
    transport.send(email).await.expect("lettre sends");
}

fn tools_ready() -> bool {
    tools::available("curl") && tools::available("python3")
}

#[tokio::test]
async fn messages_are_listed_shown_raw_and_deleted_over_the_api() {
    if !tools_ready() {
        return;
    }
    let catcher = Catcher::start(&[]);
    assert_eq!(catcher.smtplib("rich", &["Your report"]).await, ["sent"]);
    lettre_send(catcher.smtpd.addr(), "From lettre").await;
    assert_eq!(catcher.smtplib("login", &["Signed in"]).await, ["sent"]);

    let list = catcher.get_json("/api/messages").await;
    let subjects: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        subjects,
        ["Signed in", "From lettre", "Your report"],
        "newest first"
    );
    assert_eq!(list[1]["sender"], "app@example.com");
    assert_eq!(
        list[1]["recipients"],
        serde_json::json!(["bob@example.com"])
    );
    assert!(list[2]["size"].as_u64().unwrap() > 100, "{list}");
    assert!(list[2]["time"].as_str().unwrap().ends_with('Z'), "{list}");

    let rich = catcher.get_json("/api/messages/1").await;
    let recipient = &rich["envelope"]["recipients"][0];
    assert_eq!(recipient["address"], "ann@example.com");
    assert_eq!(recipient["parameters"][0], "NOTIFY=SUCCESS,FAILURE");
    assert_eq!(rich["session"]["helo"], "client.example");
    assert!(
        rich["session"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(rich["session"]["auth"], Value::Null);
    assert_eq!(rich["text"][0].as_str().unwrap().trim(), "the text part");
    assert_eq!(
        rich["html"][0].as_str().unwrap().trim(),
        "<p>the html part</p>"
    );
    assert_eq!(rich["attachments"][0]["name"], "report.bin");
    assert_eq!(rich["attachments"][0]["size"], 100);
    let headers = rich["headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h["name"] == "Subject" && h["value"] == "Your report")
    );

    let (status, signed_in) = catcher.curl("GET", "/api/messages/3", None).await;
    assert_eq!(status, 200);
    let signed_in: Value = serde_json::from_str(&signed_in).unwrap();
    assert_eq!(signed_in["session"]["auth"]["mechanism"], "PLAIN");
    assert_eq!(signed_in["session"]["auth"]["login"], "ann");
    assert!(!signed_in.to_string().contains("s3cret"), "{signed_in}");

    let (status, raw) = catcher.curl("GET", "/api/messages/2/raw", None).await;
    assert_eq!(status, 200);
    assert!(raw.contains("Subject: From lettre\r\n"), "{raw}");
    assert!(raw.contains("Hello from lettre"), "{raw}");
    let output = tools::run({
        let mut c = Command::new("curl");
        c.args(["-sS", "-o", "/dev/null", "-w", "%{content_type}"])
            .arg(format!("{}/api/messages/2/raw", catcher.api));
        c
    })
    .await;
    assert_eq!(String::from_utf8_lossy(&output.stdout), "message/rfc822");

    for (path, id) in [
        ("/api/messages/9", "9"),
        ("/api/messages/nine", "nine"),
        ("/api/messages/9/raw", "9"),
    ] {
        let (status, body) = catcher.curl("GET", path, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body, format!(r#"{{"error":"no message {id}"}}"#));
    }
    assert_eq!(catcher.curl("DELETE", "/api/messages/2", None).await.0, 204);
    assert_eq!(catcher.curl("DELETE", "/api/messages/2", None).await.0, 404);
    assert_eq!(catcher.ids().await, [3, 1]);
    assert_eq!(catcher.curl("DELETE", "/api/messages", None).await.0, 204);
    assert_eq!(catcher.ids().await, Vec::<u64>::new());
}

/// A CI script waits for mail with `curl -N`: the event for a message sent after the
/// subscription arrives without polling.
#[tokio::test]
async fn the_event_stream_announces_a_message_sent_after_subscribing() {
    if !tools_ready() {
        return;
    }
    let catcher = Catcher::start(&[]);
    let child = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "20"])
        .arg(format!("{}/api/events", catcher.api))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run curl");
    let mut curl = KillOnDrop(child);
    let (tx, lines) = mpsc::channel();
    let stdout = curl.stdout.take().expect("curl's stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |what: &str| loop {
        let line = lines
            .recv_timeout(REPLY_TIMEOUT)
            .unwrap_or_else(|_| panic!("no {what} on the event stream"));
        if line.starts_with(what) {
            return line;
        }
    };
    next(": ready");
    assert_eq!(catcher.smtplib("plain", &["Wake up"]).await, ["sent"]);
    assert_eq!(next("event:"), "event: message");
    let data = next("data:");
    let summary: Value = serde_json::from_str(&data["data:".len()..]).expect("JSON data");
    assert_eq!(summary["subject"], "Wake up");
    assert_eq!(summary["id"], 1);
    assert_eq!(summary["recipients"][0], "ann@example.com");
}

#[tokio::test]
async fn the_session_facts_show_starttls_and_the_login() {
    if !tools_ready() {
        return;
    }
    let pki = Pki::new();
    let (cert, key) = (pki.server.cert.to_str(), pki.server.key.to_str());
    let tls = ["--tls-cert", cert.unwrap(), "--tls-key", key.unwrap()];
    let catcher = Catcher::start(&tls);
    let options = format!("starttls:{}", pki.ca.display());
    assert_eq!(catcher.smtplib(&options, &["Secure"]).await, ["sent"]);
    let session = &catcher.get_json("/api/messages/1").await["session"];
    assert_eq!(session["tls"]["version"], "TLSv1.3", "{session}");
    assert_eq!(session["tls"]["implicit"], false, "{session}");
    assert!(
        session["tls"]["cipher_suite"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(session["auth"]["login"], "ann", "{session}");
}

#[tokio::test]
async fn the_count_bound_drops_the_oldest_message() {
    if !tools_ready() {
        return;
    }
    let catcher = Catcher::start(&["--capture-max-messages", "2"]);
    let sent = catcher.smtplib("plain", &["one", "two", "three"]).await;
    assert_eq!(sent, ["sent", "sent", "sent"]);
    assert_eq!(catcher.ids().await, [3, 2]);
    assert_eq!(catcher.curl("GET", "/api/messages/1", None).await.0, 404);
}

#[tokio::test]
async fn the_size_bound_drops_the_oldest_and_refuses_what_cannot_fit() {
    if !tools_ready() {
        return;
    }
    // Each message is a little over 600 bytes: two fit in 1500, three do not.
    let catcher = Catcher::start(&["--capture-max-bytes", "1500"]);
    let sent = catcher.smtplib("pad:400", &["one", "two", "three"]).await;
    assert_eq!(sent, ["sent", "sent", "sent"]);
    assert_eq!(catcher.ids().await, [3, 2]);
    assert_eq!(catcher.smtplib("pad:2000", &["huge"]).await, ["552"]);
    assert_eq!(
        catcher.ids().await,
        [3, 2],
        "a refused message drops nothing"
    );
}

#[tokio::test]
async fn a_fault_posted_over_the_api_makes_smtplib_see_451_until_it_is_deleted() {
    if !tools_ready() {
        return;
    }
    let catcher = Catcher::start(&[]);
    assert_eq!(catcher.smtplib("plain", &["before"]).await, ["sent"]);
    let fault = r#"{"command": "mail", "nth": 1, "reply": "451 4.3.0 Try again later"}"#;
    let (status, body) = catcher.curl("POST", "/api/faults", Some(fault)).await;
    assert_eq!((status, body.as_str()), (201, r#"{"added":1}"#));
    let sent = catcher.smtplib("plain", &["refused", "after"]).await;
    assert_eq!(sent, ["451", "sent"], "nth counts from the POST");

    let every = r#"[{"command": "rcpt", "reply": "451 4.3.0 Later"},
                    {"command": "data", "drop": "in_data"}]"#;
    assert_eq!(
        catcher.curl("POST", "/api/faults", Some(every)).await.0,
        201
    );
    assert_eq!(catcher.smtplib("plain", &["a", "b"]).await, ["451", "451"]);
    assert_eq!(catcher.curl("DELETE", "/api/faults", None).await.0, 204);
    assert_eq!(catcher.smtplib("plain", &["cleared"]).await, ["sent"]);

    let dropped = r#"{"command": "data", "nth": 1, "drop": "in_data"}"#;
    assert_eq!(
        catcher.curl("POST", "/api/faults", Some(dropped)).await.0,
        201
    );
    assert_eq!(catcher.smtplib("plain", &["cut"]).await, ["closed"]);
    let subjects: Vec<String> = catcher
        .get_json("/api/messages")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(subjects, ["cleared", "after", "before"]);

    let bad: [(&str, &str); 3] = [
        ("{\"command\": \"mail\"", "the body is not JSON"),
        (
            r#"{"command": "quit", "reply": "421"}"#,
            "unknown variant `quit`",
        ),
        (
            r#"{"command": "mail", "reply": "4.3.0 later"}"#,
            "is not a reply line",
        ),
    ];
    for (body, why) in bad {
        let (status, answer) = catcher.curl("POST", "/api/faults", Some(body)).await;
        assert_eq!(status, 400, "{body}");
        let answer: Value = serde_json::from_str(&answer).expect("a JSON error");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
}

#[tokio::test]
async fn the_api_address_goes_with_capture_and_only_with_it() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--handler", "capture"],
            "--handler capture needs --api-listen ADDR",
        ),
        (
            &["--api-listen", "127.0.0.1:0"],
            "--api-listen is only for --handler capture",
        ),
        (
            &["--api-listen", "127.0.0.1:0", "--handler", "sink"],
            "--api-listen is only for --handler capture",
        ),
    ];
    for (args, error) in cases {
        let output = run_smtpd(args).await;
        assert_eq!(output.status.code(), Some(2), "{}", tools::shown(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with(&format!("smtpd: {error}")),
            "{args:?}: {stderr}"
        );
    }
}
