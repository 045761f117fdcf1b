//! The check every form route makes before it reads anything: a request that the
//! browser marks as coming from another site is refused with `403`, so that a page
//! elsewhere cannot make a member of staff's browser post a form to the CRM.
//!
//! Refused: `Sec-Fetch-Site` of `cross-site` or `same-site` (browsers send it on every
//! request since 2020–2023), or an `Origin` header whose host and port are not the
//! request's `Host` (older browsers send `Origin` on every POST), `Origin: null`
//! included. A request with neither header (curl, a script) is not a browser's and
//! passes.

use warp::http::{header, HeaderMap, StatusCode};

use super::PageError;

/// `Ok` when the request may come from one of this service's own pages.
pub fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default().trim().to_ascii_lowercase();
        if site == "cross-site" || site == "same-site" {
            return Err(refused(format!(
                "Votre navigateur indique que ce formulaire a été envoyé depuis un autre site \
                 (Sec-Fetch-Site : {site}). Par sécurité, le CRM n'accepte que les formulaires \
                 de ses propres pages : rouvrez la page dans le CRM et recommencez."
            )));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().trim();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .trim();
        if !origin_matches_host(origin, host) {
            let shown = if host.is_empty() { "aucune" } else { host };
            return Err(refused(format!(
                "Ce formulaire a été envoyé depuis la page d'un autre site (origine {origin}, \
                 adresse du CRM {shown}). Par sécurité, le CRM n'accepte que les formulaires \
                 de ses propres pages : rouvrez la page dans le CRM et recommencez."
            )));
        }
    }
    Ok(())
}

fn refused(message: String) -> PageError {
    PageError::new(StatusCode::FORBIDDEN, "Formulaire refusé", message)
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as the `Host`
/// header. A port left out is the scheme's default on both sides.
fn origin_matches_host(origin: &str, host: &str) -> bool {
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
fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
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

#[cfg(test)]
mod tests {
    use warp::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_pages_own_forms_and_requests_without_browser_headers_pass() {
        for ok in [
            headers(&[]),
            headers(&[("host", "127.0.0.1:8080")]),
            headers(&[("sec-fetch-site", "same-origin"), ("host", "127.0.0.1:8080")]),
            headers(&[("sec-fetch-site", "none")]),
            headers(&[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")]),
            headers(&[("origin", "http://CRM.exemple.fr"), ("host", "crm.exemple.fr")]),
            headers(&[("origin", "http://crm.exemple.fr"), ("host", "crm.exemple.fr:80")]),
            headers(&[("origin", "https://crm.exemple.fr"), ("host", "crm.exemple.fr")]),
            headers(&[("origin", "http://[::1]:8080"), ("host", "[::1]:8080")]),
        ] {
            assert!(same_origin(&ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn what_a_browser_marks_as_another_site_is_a_403() {
        for bad in [
            headers(&[("sec-fetch-site", "cross-site"), ("host", "127.0.0.1:8080")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("sec-fetch-site", "Cross-Site")]),
            headers(&[("origin", "http://evil.exemple"), ("host", "127.0.0.1:8080")]),
            headers(&[("origin", "http://127.0.0.1:9090"), ("host", "127.0.0.1:8080")]),
            headers(&[("origin", "https://crm.exemple.fr"), ("host", "crm.exemple.fr:80")]),
            headers(&[("origin", "null"), ("host", "127.0.0.1:8080")]),
            headers(&[("origin", "http://127.0.0.1:8080")]),
            headers(&[("origin", "http://127.0.0.1:8080@evil"), ("host", "127.0.0.1:8080")]),
            headers(&[("origin", "file://"), ("host", "127.0.0.1:8080")]),
            headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://evil.exemple"),
                ("host", "127.0.0.1:8080"),
            ]),
        ] {
            let error = same_origin(&bad).unwrap_err();
            assert_eq!(error.status, StatusCode::FORBIDDEN, "{bad:?}");
            assert!(error.message.contains("autre site"), "{}", error.message);
        }
    }
}
