//! Who may ask what, checked in front of every route ([`protect`]):
//!
//! 1. the `Host` must be a name of this server (loopback names, the bound address,
//!    `crm`, `--allowed-host`), else `421`: a page on another site that renamed itself
//!    to 127.0.0.1 (DNS rebinding) cannot read the answers;
//! 2. a request that a browser marks as sent from another site is `403`
//!    ([`origin::cross_site`]);
//! 3. without tokens ("protected mode"), only loopback peers are answered (`403`
//!    otherwise); with `--tokens`, every `/api` route needs a token of a large enough
//!    role, as `Authorization: Bearer` or through the pages' session cookie (`401`,
//!    `403`).
//!
//! The forms' CSRF tokens and sessions are in [`csrf`], the tokens file in [`tokens`].

pub mod csrf;
pub mod origin;
pub mod tokens;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::config::Config;
use crate::error::ApiError;
use crate::http::raw_query;
use crate::state::AppState;
use crate::store::Store;
use crm_model::audit::WriteOrigin;
pub use csrf::Sessions;
use origin::CrossSite;
pub use tokens::{Principal, Role, TokenSet, TokensError};

/// The address of the connection's peer, put in each request's extensions by the
/// accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The name the older deployments' gateway gives this service.
const GATEWAY_NAME: &str = "crm";

/// What the access checks know: the tokens, the server's names, the open sessions.
#[derive(Debug)]
pub struct Access {
    tokens: Option<Arc<TokenSet>>,
    /// `--allowed-host` values, lowercased: `name` (any port) or `name:port`.
    allowed_hosts: Vec<String>,
    bound: Option<SocketAddr>,
    pub sessions: Sessions,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: `/healthz`, the stylesheet, the login and logout routes, `/`, and
    /// whatever is not under `/api`.
    Open,
    Role(Role),
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `421`: the `Host` is none of this server's names.
    MisdirectedHost(String),
    /// `403`: a browser marked the request as sent from another site.
    CrossSite(CrossSite),
    /// `403`: no tokens configured and the peer is not on this machine.
    LoopbackOnly(IpAddr),
    /// `401`: no token, or an unknown one (`invalid`).
    Unauthenticated { invalid: bool },
    /// `403`: the token's role is below the route's.
    RoleTooSmall { principal: Principal, needed: Role },
}

impl Access {
    pub fn new(config: &Config) -> Access {
        Access {
            tokens: config.tokens.clone(),
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            bound: config.listen_addr,
            sessions: Sessions::default(),
        }
    }

    pub fn tokens_configured(&self) -> bool {
        self.tokens.is_some()
    }

    /// Whether `Host` is one of this server's names: a loopback name or address, the
    /// bound address, `crm`, or an `--allowed-host`, each with any port (an allowed host
    /// given with a port, with that port only). No `Host` at all (HTTP/1.0 clients)
    /// passes: a browser always sends one.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let host = host.to_ascii_lowercase();
        let Some((name, port)) = origin::split_host_port(&host, 80) else {
            return false;
        };
        let name = name.trim_end_matches('.');
        if matches!(name, "localhost" | GATEWAY_NAME) || name.ends_with(".localhost") {
            return true;
        }
        let ip = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name)
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = ip {
            if ip.to_canonical().is_loopback() || self.bound.is_some_and(|b| b.ip() == ip) {
                return true;
            }
        }
        self.allowed_hosts.iter().any(|allowed| {
            let has_port = allowed.rfind(':').is_some_and(|i| !allowed[i..].contains(']'));
            if has_port {
                origin::split_host_port(allowed, 80) == Some((name, port))
            } else {
                allowed.trim_end_matches('.') == name
            }
        })
    }

    /// The whole decision for one request; `Ok` with who it is.
    pub fn decide(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Principal, Refusal> {
        let host = origin::host_header(headers);
        if !self.host_allowed(host) {
            return Err(Refusal::MisdirectedHost(host.unwrap_or_default().to_string()));
        }
        if let Some(cross) = origin::cross_site(headers) {
            return Err(Refusal::CrossSite(cross));
        }
        let Some(tokens) = &self.tokens else {
            // Protected mode. No peer is a request made inside the process.
            return match peer.map(|p| p.ip().to_canonical()) {
                Some(ip) if !ip.is_loopback() => Err(Refusal::LoopbackOnly(ip)),
                _ => Ok(Principal::local()),
            };
        };
        let needed = match need(method, path, query) {
            Need::Open => return Ok(self.authenticate(tokens, headers).unwrap_or_else(|_| anonymous())),
            Need::Role(role) => role,
        };
        let principal = self.authenticate(tokens, headers)?;
        if principal.role < needed {
            return Err(Refusal::RoleTooSmall { principal, needed });
        }
        Ok(principal)
    }

    /// The token of `Authorization: Bearer`, else the session of the cookie.
    fn authenticate(&self, tokens: &TokenSet, headers: &HeaderMap) -> Result<Principal, Refusal> {
        if let Some(authorization) = headers.get(header::AUTHORIZATION) {
            let text = authorization.to_str().unwrap_or_default().trim();
            let presented = text
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim());
            return presented
                .and_then(|token| tokens.holder(token))
                .ok_or(Refusal::Unauthenticated { invalid: true });
        }
        self.session(headers)
            .map(|s| s.principal)
            .ok_or(Refusal::Unauthenticated { invalid: false })
    }

    /// Opens a session for the holder of `token`: its id, `None` for an unknown token
    /// (or when no tokens are configured).
    pub fn log_in(&self, token: &str) -> Option<(String, Principal)> {
        let principal = self.tokens.as_ref()?.holder(token)?;
        Some((self.sessions.open(principal.clone()), principal))
    }

    /// Ends the session of the request's cookie.
    pub fn log_out(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            self.sessions.close(id);
        }
    }

    /// The live session of the request's cookie.
    pub fn session(&self, headers: &HeaderMap) -> Option<csrf::Session> {
        let id = session_id(headers)?;
        self.sessions.get(id)
    }

    /// Who the request is, for a handler that needs more than the route says (the
    /// import reads its mode from the form): `local` without tokens.
    pub fn principal(&self, headers: &HeaderMap) -> Option<Principal> {
        match &self.tokens {
            None => Some(Principal::local()),
            Some(tokens) => self.authenticate(tokens, headers).ok(),
        }
    }

    /// The CSRF token the request's forms carry once tokens are configured: its
    /// session's, else the server's (the login form). Without tokens there is no
    /// session nor cookie for a forged form to ride on, the forms stay as they were and
    /// `None` is answered: what another site's page sends is refused by its origin.
    pub fn csrf_for(&self, headers: &HeaderMap) -> Option<String> {
        self.tokens.as_ref()?;
        Some(match self.session(headers) {
            Some(session) if headers.get(header::AUTHORIZATION).is_none() => session.csrf,
            _ => self.sessions.anonymous_csrf().to_string(),
        })
    }

    /// The check of a posted form's `csrf` field. A post authenticated by the session
    /// cookie must carry its session's token; any other post that carries a token must
    /// carry the right one (a form of an earlier run of the server). A post with no
    /// token and no cookie is a script's, which no other site can make a browser send
    /// (its origin is checked before), and which older clients send.
    pub fn csrf_ok(&self, headers: &HeaderMap, posted: Option<&str>) -> bool {
        let cookie_session = headers
            .get(header::AUTHORIZATION)
            .is_none()
            .then(|| self.session(headers))
            .flatten();
        match (cookie_session, posted) {
            (Some(session), Some(posted)) => csrf::same_secret(&session.csrf, posted),
            (Some(_), None) => false,
            (None, Some(posted)) => csrf::same_secret(self.sessions.anonymous_csrf(), posted),
            (None, None) => true,
        }
    }

    /// The warning to log at start: bound beyond loopback with no tokens.
    pub fn exposure_warning(&self) -> Option<String> {
        let bound = self.bound?;
        (self.tokens.is_none() && !bound.ip().to_canonical().is_loopback()).then(|| {
            format!(
                "listening on {bound} without tokens: only clients on this machine (loopback) are answered, every \
                 other peer gets 403; give --tokens FILE (CRM_TOKENS) with name:token:role lines to serve them"
            )
        })
    }
}

/// Who a request to an open route is when it shows no valid token.
fn anonymous() -> Principal {
    Principal {
        name: "anonymous".into(),
        role: Role::Read,
    }
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| csrf::cookie(v, csrf::SESSION_COOKIE))
}

/// What `method path?query` needs once tokens are configured: reads `read`, writes
/// `write`, and the routes that destroy or reveal everything `admin`.
pub fn need(method: &Method, path: &str, query: &str) -> Need {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let reading = method == Method::GET || method == Method::HEAD;
    match segments.as_slice() {
        [] | ["healthz"] | ["api", "assets", ..] | ["api", "login"] | ["api", "logout"] => Need::Open,
        [first, ..] if *first != "api" => Need::Open,
        ["api", "v1", "export", ..] | ["api", "v1", "audit", ..] => Need::Role(Role::Admin),
        _ if method == Method::DELETE => Need::Role(Role::Admin),
        ["api", "update_db"] if method == Method::POST => {
            Need::Role(if replaces(query) { Role::Admin } else { Role::Write })
        }
        // Answering moves the consumer's position: the next call gets other tickets.
        ["api", "get_tickets", _] => Need::Role(Role::Write),
        // The scheduler's calls: with or without a body, they pull and pay.
        ["api", "credit"] | ["api", "credit_ecommerce"] | ["api", "paiement"] => Need::Role(Role::Write),
        // Look-ups by e-mail, posted.
        ["api", "data", _] | ["api", "customer", "email"] if method == Method::POST => Need::Role(Role::Read),
        _ if reading => Need::Role(Role::Read),
        _ => Need::Role(Role::Write),
    }
}

/// Whether an import query asks for `mode=replace` (any of its `mode`s; an unreadable
/// query counts as one, the import refuses it anyway).
fn replaces(query: &str) -> bool {
    match serde_urlencoded::from_str::<Vec<(String, String)>>(query) {
        Ok(pairs) => pairs
            .iter()
            .any(|(k, v)| k == "mode" && crm_model::ImportMode::parse(v) != Some(crm_model::ImportMode::Merge)),
        Err(_) => true,
    }
}

/// The routes that answer HTML: their refusals are pages too.
pub fn is_page(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] | ["api"] | ["api", "customers", ..] | ["api", "login"] | ["api", "logout"] => true,
        ["api", "update_db"] => method == Method::GET,
        _ => false,
    }
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Refusal::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// The JSON error of the refusal.
    pub fn api_error(&self) -> ApiError {
        match self {
            Refusal::MisdirectedHost(host) => ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                format!(
                    "this server does not answer to the name {host:?}: use localhost, 127.0.0.1, [::1], its bound \
                     address, crm, or a name given with --allowed-host (CRM_ALLOWED_HOSTS)"
                ),
            )
            .with("host", json!(host)),
            Refusal::CrossSite(CrossSite::FetchSite(site)) => ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                format!("the browser says this request comes from another site (Sec-Fetch-Site: {site}); refused"),
            ),
            Refusal::CrossSite(CrossSite::Origin { origin, host }) => ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                format!(
                    "the request comes from the page of another origin ({origin}, this server is {host:?}); refused"
                ),
            ),
            Refusal::LoopbackOnly(ip) => ApiError::new(
                StatusCode::FORBIDDEN,
                "tokens_required",
                format!(
                    "this server has no tokens configured, so it answers only clients on its own machine, not {ip}; \
                     start it with --tokens FILE (or CRM_TOKENS=FILE), a file of name:token:role lines (role read, \
                     write or admin), and send Authorization: Bearer <token>"
                ),
            ),
            Refusal::Unauthenticated { invalid: false } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_required",
                "this route needs a token: send Authorization: Bearer <token>",
            ),
            Refusal::Unauthenticated { invalid: true } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token sent is not one of this server's (Authorization: Bearer <token>)",
            ),
            Refusal::RoleTooSmall { principal, needed } => ApiError::new(
                StatusCode::FORBIDDEN,
                "role_too_small",
                format!(
                    "the token {} has the role {}; this route needs {needed}",
                    principal.name, principal.role
                ),
            )
            .with("role", json!(principal.role.as_str()))
            .with("needed", json!(needed.as_str())),
        }
    }

    /// The sentence of the HTML page of a refusal.
    fn page_message(&self) -> String {
        match self {
            Refusal::MisdirectedHost(host) => {
                format!("Ce serveur ne répond pas au nom « {host} ». Ouvrez le CRM par son adresse habituelle.")
            }
            Refusal::CrossSite(_) => "La demande vient de la page d'un autre site : refusée.".into(),
            Refusal::LoopbackOnly(_) => "Ce serveur n'a pas de jetons configurés : il ne répond qu'aux postes de \
                 la machine elle-même. L'administrateur doit le démarrer avec --tokens FICHIER."
                .into(),
            Refusal::Unauthenticated { .. } => {
                "Le jeton envoyé n'est pas valable. Reconnectez-vous par la page de connexion (/api/login).".into()
            }
            Refusal::RoleTooSmall { principal, needed } => format!(
                "Le jeton « {} » a le rôle {} ; cette action demande le rôle {needed}.",
                principal.name, principal.role
            ),
        }
    }

    /// The answer: JSON, or a page on the HTML routes (a login form for a browser with
    /// no session).
    pub fn into_response(self, method: &Method, path: &str, query: &str, headers: &HeaderMap) -> Response {
        if is_page(method, path) {
            match &self {
                Refusal::CrossSite(_) => {
                    if let Some(page) = crate::pages::cross_site_page(headers) {
                        return page;
                    }
                }
                Refusal::Unauthenticated { invalid: false } => {
                    let back = if method == Method::GET && !query.is_empty() {
                        format!("{path}?{query}")
                    } else if method == Method::GET {
                        path.to_string()
                    } else {
                        "/api".to_string()
                    };
                    return crate::pages::login_redirect(&back);
                }
                _ => return crate::pages::refusal_page(self.status(), self.page_message()),
            }
        }
        let invalid = matches!(self, Refusal::Unauthenticated { invalid: true });
        let mut response = self.api_error().into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            let challenge = if invalid {
                "Bearer realm=\"crm\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"crm\""
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

/// Who makes a request and through which route, for the audit trail: the token's
/// name (`local` without tokens) and the route's pattern.
pub fn write_origin(
    access: Arc<Access>,
) -> impl Filter<Extract = (WriteOrigin,), Error = std::convert::Infallible> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .map(move |method: Method, path: warp::path::FullPath, headers: HeaderMap| {
            // The access checks passed before any route: a write has a principal. A
            // route open to all (none writes) may have none.
            let actor = access.principal(&headers).map_or_else(|| anonymous().name, |p| p.name);
            WriteOrigin::new(actor, format!("{method} {}", crate::metrics::route_of(path.as_str())))
        })
}

/// The request's state, its store acting for the request's [`write_origin`]: what
/// every route module hands its handlers, so that each write is recorded as theirs.
pub fn acting_state<S: Store>(
    state: AppState<S>,
) -> impl Filter<Extract = (AppState<S>,), Error = std::convert::Infallible> + Clone {
    let access = state.access.clone();
    warp::any()
        .map(move || state.clone())
        .and(write_origin(access))
        .map(|state: AppState<S>, origin: WriteOrigin| state.acting_for(origin))
}

/// `routes` behind the access checks: a refused request never reaches them.
pub fn protect<S: Store>(state: &AppState<S>, routes: BoxedFilter<(Response,)>) -> BoxedFilter<(Response,)> {
    let access = state.access.clone();
    let refused = warp::method()
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .and_then(
            move |method: Method, path: warp::path::FullPath, query: String, headers: HeaderMap, peer: Option<PeerAddr>| {
                let decided = access.decide(&method, path.as_str(), &query, &headers, peer.map(|p| p.0));
                let answer = match decided {
                    // Let the routes answer.
                    Ok(_) => Err(warp::reject::not_found()),
                    Err(refusal) => {
                        tracing::info!(%method, path = path.as_str(), status = refusal.status().as_u16(), code = refusal.api_error().code(), "refused");
                        Ok(refusal.into_response(&method, path.as_str(), &query, &headers))
                    }
                };
                async move { answer }
            },
        );
    refused.or(routes).unify().boxed()
}

#[cfg(test)]
mod tests;
