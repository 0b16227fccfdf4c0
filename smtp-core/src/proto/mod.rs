//! The protocol without I/O: command lines, paths, replies, and the framing of command lines
//! and DATA. Everything here is a pure function of its input, so it is tested with tables of
//! bytes and fuzzed apart from the network.

pub mod address;
pub mod command;
pub mod data;
mod dsn;
pub mod line;
pub mod params;
pub mod proxy;
pub mod replies;
pub mod reply;
pub mod xclient;
pub mod xforward;

pub use address::{PathOptions, parse_path_with};
pub use command::{CommandLine, Path, PathError, Verb, parse_command, parse_path};
pub use data::{DataDecoder, DataError};
pub use line::{Frame, LineFramer};
pub use params::{
    Bdat, BodyType, MailDsn, MailParams, Notify, Orcpt, ParamPolicy, RcptDsn, RcptParams, Ret,
    parse_bdat, parse_mail_params, parse_rcpt_params,
};
pub use reply::{Reply, enhanced_code};
pub use xclient::{Attr, AttrError, HeloProto, XClient, parse_xclient};
