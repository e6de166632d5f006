//! The OpenID Connect relying party (`openidconnect`): the configured providers, their
//! discovered endpoints and keys, the authorization request, and the checked identity that a
//! code comes back as.
//!
//! - Every call to a provider (discovery, JWKS, token, userinfo) is bounded: 5 s to connect,
//!   10 s in all, 512 KiB of answer; redirects are never followed; only https (or http on a
//!   loopback address) is called. A provider that is slow or down costs a request at most
//!   that long, and one discovery at a time per provider (the others wait for it).
//! - Discovery (with the JWKS) is cached for an hour; an ID token signed by a key the cache
//!   does not know fetches them again (at most every 30 s), so a provider's key rotation
//!   needs no restart.
//! - The ID token is checked by the library: signature by the provider's JWKS (asymmetric
//!   algorithms only: never `none`, never the client secret), `iss`, `aud`, `exp`, `nonce`.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use openidconnect::{
    AccessToken, AsyncHttpClient, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, SubjectIdentifier, TokenResponse,
    core::{
        CoreClient, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreProviderMetadata,
        CoreResponseType, CoreUserInfoClaims,
    },
    http,
};
use tokio::sync::Mutex;

use crate::config::{ExposeSecret, OidcConfig, OidcProviderConfig};

/// Time to connect to a provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for one call to a provider, answer included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a provider's answer read.
const MAX_ANSWER_BYTES: usize = 512 * 1024;
/// How long discovered endpoints and keys are used before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Least time between two fetches for an unknown key.
const MIN_REFETCH: Duration = Duration::from_secs(30);
/// The ID-token signatures accepted: the asymmetric ones.
const ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// A client whose endpoints came from discovery.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a provider could not be used: logged, never shown (the browser gets `provider_error`).
#[derive(Debug)]
pub struct ProviderError(String);

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> ProviderError {
    ProviderError(format!("{what}: {error}"))
}

/// An authorization request to send the browser to, and what must be kept to finish it.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says signed in.
#[derive(Clone, Debug)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    /// The provider says it checked `email` (`email_verified: true`).
    pub email_verified: bool,
    pub name: Option<String>,
}

/// The configured providers.
pub struct OidcProviders {
    providers: Vec<Provider>,
    http: ProviderHttp,
}

struct Provider {
    config: OidcProviderConfig,
    redirect: RedirectUrl,
    /// The discovered metadata (endpoints and keys) and when it was fetched.
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

impl OidcProviders {
    pub fn new(config: &OidcConfig) -> Self {
        let providers = config
            .providers
            .iter()
            .filter_map(|p| {
                let uri = format!("{}/api/auth/oidc/{}/callback", config.public_url, p.name);
                match RedirectUrl::new(uri) {
                    Ok(redirect) => Some(Provider {
                        config: p.clone(),
                        redirect,
                        metadata: Mutex::new(None),
                    }),
                    Err(e) => {
                        tracing::error!(provider = %p.name, error = %e, "PUBLIC_URL gives no redirect URI: provider off");
                        None
                    }
                }
            })
            .collect();
        Self {
            providers,
            http: ProviderHttp::new(),
        }
    }

    /// `(name, display name)` of each provider, in the configured order.
    pub fn list(&self) -> impl Iterator<Item = (&str, &str)> {
        self.providers
            .iter()
            .map(|p| (p.config.name.as_str(), p.config.display_name.as_str()))
    }

    /// Is `name` a configured provider?
    pub fn knows(&self, name: &str) -> bool {
        self.provider(name).is_some()
    }

    fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.config.name == name)
    }

    /// A new authorization request at provider `name`: code flow, PKCE S256, fresh `state`
    /// and `nonce`.
    pub async fn authorize(&self, name: &str) -> Result<Authorization, ProviderError> {
        let provider = self
            .provider(name)
            .ok_or_else(|| ProviderError(format!("no provider {name}")))?;
        let client = provider.client(self.metadata(provider, false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        // `openid` is always asked for; the rest as configured.
        for scope in provider.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Authorization {
            url: url.into(),
            state: state.into_secret(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.into_secret(),
        })
    }

    /// Exchanges an authorization `code` at provider `name` and checks the ID token it comes
    /// with (signature, `iss`, `aud`, `exp`, `nonce`): who signed in. The email comes from the
    /// userinfo endpoint when the ID token has none.
    pub async fn identify(
        &self,
        name: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, ProviderError> {
        let provider = self
            .provider(name)
            .ok_or_else(|| ProviderError(format!("no provider {name}")))?;
        let mut client = provider.client(self.metadata(provider, false).await?);
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| failed("token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| failed("token request", error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| ProviderError("the token answer has no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_owned());
        let verify = |client: &DiscoveredClient| -> Result<CoreIdTokenClaims, _> {
            let verifier = client.id_token_verifier().set_allowed_algs(ALGORITHMS);
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&client) {
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) => {
                // A key the cache does not know: the provider may have rotated its keys.
                client = provider.client(self.metadata(provider, true).await?);
                verify(&client)
            }
            checked => checked,
        }
        .map_err(|e| failed("ID token refused", e))?;
        let mut identity = Identity {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
        };
        if identity.email.is_none() {
            self.complete_from_userinfo(&client, token.access_token(), &mut identity)
                .await;
        }
        Ok(identity)
    }

    /// Fills in email (and name) from the userinfo endpoint, for a provider whose ID tokens
    /// carry only `sub`. Nothing when it has none or the call fails (logged).
    async fn complete_from_userinfo(
        &self,
        client: &DiscoveredClient,
        access_token: &AccessToken,
        identity: &mut Identity,
    ) {
        let Ok(request) = client.user_info(
            access_token.clone(),
            Some(SubjectIdentifier::new(identity.subject.clone())),
        ) else {
            return;
        };
        let claims: CoreUserInfoClaims = match request.request_async(&self.http).await {
            Ok(claims) => claims,
            Err(e) => {
                tracing::info!(error = %error_chain(&e), "userinfo request failed");
                return;
            }
        };
        identity.email = claims.email().map(|e| e.to_string());
        identity.email_verified = claims.email_verified().unwrap_or(false);
        if identity.name.is_none() {
            identity.name = claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string());
        }
    }

    /// The provider's metadata: the cached copy while it is fresh (and, when `refetch`, not
    /// younger than [`MIN_REFETCH`]), else discovered again.
    async fn metadata(
        &self,
        provider: &Provider,
        refetch: bool,
    ) -> Result<CoreProviderMetadata, ProviderError> {
        let mut cached = provider.metadata.lock().await;
        if let Some((fetched, metadata)) = cached.as_ref() {
            let age = fetched.elapsed();
            if age < METADATA_TTL && (!refetch || age < MIN_REFETCH) {
                return Ok(metadata.clone());
            }
        }
        let issuer =
            IssuerUrl::new(provider.config.issuer.clone()).map_err(|e| failed("issuer", e))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| failed("discovery", error_chain(&e)))?;
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }
}

impl Provider {
    fn client(&self, metadata: CoreProviderMetadata) -> DiscoveredClient {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(
                self.config.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect.clone())
    }
}

/// An error and its sources, for the log.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The HTTP client for providers: bounded in time and size, no redirects, https (or loopback
/// http) only.
#[derive(Clone)]
struct ProviderHttp(reqwest::Client);

impl ProviderHttp {
    fn new() -> Self {
        // TLS by ring, for the process (as the photo store's client); once is enough.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .build()
            .expect("the HTTP client for OpenID providers builds");
        Self(client)
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let allowed = url::Url::parse(&request.uri().to_string())
                .is_ok_and(|url| crate::net::secure_or_loopback(&url));
            if !allowed {
                return Err(HttpClientError::Other(format!(
                    "{} is neither https nor on the loopback",
                    request.uri()
                )));
            }
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let mut response = self.0.execute(request).await.map_err(Box::new)?;
            let mut answer = http::Response::builder().status(response.status().as_u16());
            for (name, value) in response.headers() {
                answer = answer.header(name.as_str(), value.as_bytes());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(Box::new)? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(HttpClientError::Other(format!(
                        "answer over {MAX_ANSWER_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            answer.body(body).map_err(HttpClientError::Http)
        })
    }
}
