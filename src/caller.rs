//! Who is calling and from where: the [`Actor`] from the bearer token, and the [`Client`]
//! (address and user agent), read once per request and handed to GraphQL as request data
//! (REST and GraphQL alike).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{HeaderValue, header::USER_AGENT, request::Parts},
};

use crate::{
    auth::{Actor, JwtKeys},
    net::{IpNet, client_ip},
};

const REQUEST_ID: &str = "x-request-id";

/// The client (request data for GraphQL resolvers): its address, as far as it can be
/// trusted, for rate limits; and its user agent, kept with the sessions it opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// The header as sent (a cheap copy); read only by the operations that keep it.
    pub user_agent: Option<HeaderValue>,
    /// The request's `x-request-id` (set by the server when the client sent none), for the
    /// audit log.
    pub request_id: Option<HeaderValue>,
}

#[derive(Clone, Debug)]
pub struct Caller {
    pub actor: Actor,
    pub client: Client,
}

/// What reading the caller takes: the token keys and the proxies whose `X-Forwarded-For` is
/// believed. Any router state that can hand these out can extract a [`Caller`].
#[derive(Clone)]
pub struct CallerKeys {
    pub jwt: Arc<JwtKeys>,
    pub trusted_proxies: Arc<[IpNet]>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    CallerKeys: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = CallerKeys::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self {
            actor: Actor::from_headers(&parts.headers, &keys.jwt),
            client: Client {
                ip: client_ip(peer, &parts.headers, &keys.trusted_proxies),
                user_agent: parts.headers.get(USER_AGENT).cloned(),
                request_id: parts.headers.get(REQUEST_ID).cloned(),
            },
        })
    }
}
