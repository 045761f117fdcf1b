//! What a browser says about where a request comes from (`Sec-Fetch-Site`, `Origin`),
//! and the names this server answers to (`Host`).

use warp::http::{header, HeaderMap};

/// Why a request is a browser's request from another site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrossSite {
    /// `Sec-Fetch-Site: cross-site` or `same-site` (lowercased).
    FetchSite(String),
    /// An `Origin` (`null` included) that is not `http(s)://<Host>`.
    Origin { origin: String, host: String },
}

/// `Some` when the browser marks the request as sent from another site: a
/// `Sec-Fetch-Site` of `cross-site` or `same-site` (browsers send it on every request
/// since 2020–2023), or an `Origin` whose host and port are not the request's `Host`
/// (older browsers send `Origin` on every POST), `Origin: null` included. A request
/// with neither header (curl, a script, an older client) is not a browser's.
pub fn cross_site(headers: &HeaderMap) -> Option<CrossSite> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default().trim().to_ascii_lowercase();
        if site == "cross-site" || site == "same-site" {
            return Some(CrossSite::FetchSite(site));
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).trim().to_string();
    let host = host_header(headers).unwrap_or_default().to_string();
    (!origin_matches_host(&origin, &host)).then_some(CrossSite::Origin { origin, host })
}

/// The `Host` header, trimmed; `None` when absent or not text.
pub fn host_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::trim)
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as the `Host`
/// header. A port left out is the scheme's default on both sides.
pub fn origin_matches_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // `null`, or not an origin at all
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return false;
    }
    match (
        split_host_port(authority, default_port),
        split_host_port(host, default_port),
    ) {
        (Some((origin_host, origin_port)), Some((host_host, host_port))) => {
            origin_host.eq_ignore_ascii_case(host_host) && origin_port == host_port
        }
        _ => false,
    }
}

/// `example.fr:8080` as (`example.fr`, 8080); `[::1]:80` as (`[::1]`, 80); no port is
/// `default_port`. `None` when unreadable.
pub fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if authority.is_empty() {
        return None;
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse().ok()?,
    };
    (!host.is_empty()).then_some((host, port))
}
