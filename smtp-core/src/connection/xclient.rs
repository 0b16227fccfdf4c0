//! XCLIENT (Postfix's `XCLIENT_README`): a trusted proxy names the client it speaks for, and
//! the session starts over as that client's, with a new `220` greeting; and XFORWARD
//! (`XFORWARD_README`): a trusted MTA names the next message's original client.

use std::net::SocketAddr;

use tracing::{debug, info};

use super::Connection;
use crate::config::{Cidr, Config, trusted};
use crate::handler::Handler;
use crate::proto::xclient::{Attr, HeloProto, XClient, parse_xclient};
use crate::proto::xforward::parse_xforward;
use crate::proto::{Reply, Verb, replies};
use crate::session::Peer;
use crate::stream::Transport;

/// What the client may send, decided once by the address the connection came from (behind
/// the PROXY protocol, the header's), as Postfix does: a client XCLIENT renamed keeps it.
#[derive(Clone, Copy, Default)]
pub(super) struct Trust {
    pub(super) xclient: bool,
    pub(super) xforward: bool,
}

impl Trust {
    pub(super) fn of(peer: &Peer, config: &Config) -> Trust {
        let ip = peer.addr().map(|a| a.ip());
        let within = |networks: &[Cidr]| ip.is_some_and(|ip| trusted(networks, ip));
        Trust {
            xclient: within(&config.xclient_trusted),
            xforward: within(&config.xforward_trusted),
        }
    }
}

impl<H: Handler, S: Transport> Connection<H, S> {
    /// XCLIENT: a trusted proxy names the client; the session starts again as that
    /// client's, with a new greeting. A `421` (its address over the per-address limit) closes
    /// the connection, as every `421` does.
    pub(super) fn xclient(&mut self, arg: Option<&str>) -> Reply {
        if self.phase.in_transaction() {
            return replies::AUTH_IN_TRANSACTION;
        }
        if !self.trust.xclient {
            info!("XCLIENT from an unauthorized client");
            return replies::INSUFFICIENT_AUTHORIZATION;
        }
        let xclient = match parse_xclient(arg) {
            Ok(xclient) => xclient,
            Err(error) => return replies::bad_attribute(Verb::Xclient, &error),
        };
        let peer = self.xclient_peer(&xclient);
        if let Some(addr) = peer.addr()
            && let Err(reply) = self.budget.admit_proxied(addr.ip(), &self.shared.config)
        {
            info!(client = %peer, "{}", reply.text());
            return reply;
        }
        let extended = match xclient.proto.as_ref().and_then(Attr::known) {
            Some(proto) => *proto == HeloProto::Esmtp,
            None => self.session.extended_smtp(),
        };
        let helo = xclient.helo.as_ref().map_or_else(
            || self.session.host_name().map(str::to_owned),
            |helo| helo.known().cloned(),
        );
        let login = xclient.login.as_ref().and_then(Attr::known).cloned();
        info!(client = %peer, helo = ?helo, authenticated = login.is_some(), "XCLIENT");
        tracing::Span::current().record("client", tracing::field::display(&peer));
        self.reset_envelope();
        self.phase.restart();
        if helo.is_some() {
            self.phase.hello();
        }
        self.auth_failures = 0;
        let greeted = helo.map(|helo| (helo, extended));
        self.session
            .after_xclient(peer, greeted, login.as_deref(), xclient);
        let config = &self.shared.config;
        replies::greeting(&config.hostname, &config.ident)
    }

    /// XFORWARD: the next message's original client, added to what earlier XFORWARD
    /// commands of this transaction said.
    pub(super) fn xforward(&mut self, arg: Option<&str>) -> Reply {
        if self.phase.in_transaction() {
            return replies::AUTH_IN_TRANSACTION;
        }
        if !self.trust.xforward {
            info!("XFORWARD from an unauthorized client");
            return replies::INSUFFICIENT_AUTHORIZATION;
        }
        match parse_xforward(arg) {
            Ok(newer) => {
                debug!(?newer, "XFORWARD");
                self.envelope.xforward.get_or_insert_default().merge(newer);
                replies::XFORWARD_OK
            }
            Err(error) => replies::bad_attribute(Verb::Xforward, &error),
        }
    }

    /// The client XCLIENT names: its `ADDR` and `PORT`, each defaulting to what the
    /// session knew; `ADDR=[UNAVAILABLE]` is a client without an address.
    fn xclient_peer(&self, xclient: &XClient) -> Peer {
        let known = self.session.peer().addr();
        let ip = match &xclient.addr {
            None => known.map(|a| a.ip()),
            Some(addr) => addr.known().copied(),
        };
        let port = match &xclient.port {
            None => known.map_or(0, |a| a.port()),
            Some(port) => port.known().copied().unwrap_or(0),
        };
        match ip {
            Some(ip) => Peer::Tcp(SocketAddr::new(ip, port)),
            None => Peer::Local,
        }
    }
}
