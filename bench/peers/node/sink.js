// nodemailer smtp-server sink for bench/run.sh: accepts and discards every message; AUTH
// PLAIN/LOGIN with user/pass, optional, without TLS. Serves until SIGTERM.
//
//   node sink.js --port 2525
"use strict";
const { SMTPServer } = require("smtp-server");

const i = process.argv.indexOf("--port");
const port = i > 0 ? Number(process.argv[i + 1]) : 2525;

const server = new SMTPServer({
  name: "localhost",
  authOptional: true,
  allowInsecureAuth: true,
  authMethods: ["PLAIN", "LOGIN"],
  disabledCommands: ["STARTTLS"],
  disableReverseLookup: true,
  size: 64 * 1024 * 1024,
  logger: false,
  onAuth(auth, session, callback) {
    if (auth.username === "user" && auth.password === "pass") {
      return callback(null, { user: auth.username });
    }
    return callback(new Error("invalid credentials"));
  },
  onData(stream, session, callback) {
    stream.on("data", () => {});
    stream.on("end", () => callback(null, "OK"));
  },
});
server.on("error", (err) => console.error(err.message));
server.listen(port, "127.0.0.1");
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
