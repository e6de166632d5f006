//! Who is calling and from where: the [`Actor`] from the bearer token and the client address,
//! read once per request and handed to GraphQL as request data (REST and GraphQL alike).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::request::Parts,
};

use crate::{
    auth::{Actor, JwtKeys},
    net::{IpNet, client_ip},
};

/// The client's address, as far as it can be trusted (request data for GraphQL resolvers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub actor: Actor,
    pub ip: ClientIp,
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
            ip: ClientIp(client_ip(peer, &parts.headers, &keys.trusted_proxies)),
        })
    }
}
