//! The check every form route makes before it reads anything: a request that the
//! browser marks as coming from another site is refused with `403`, so that a page
//! elsewhere cannot make a member of staff's browser post a form to the CRM.
//!
//! Refused: `Sec-Fetch-Site` of `cross-site` or `same-site` (browsers send it on every
//! request since 2020–2023), or an `Origin` header whose host and port are not the
//! request's `Host` (older browsers send `Origin` on every POST), `Origin: null`
//! included. A request with neither header (curl, a script) is not a browser's and
//! passes.

use warp::http::{HeaderMap, StatusCode};

use super::forms::FormData;
use super::PageError;
use crate::access::origin::{cross_site, CrossSite};
use crate::state::AppState;

/// `Ok` when the request may come from one of this service's own pages.
pub fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    match cross_site(headers) {
        None => Ok(()),
        Some(CrossSite::FetchSite(site)) => Err(refused(format!(
            "Votre navigateur indique que ce formulaire a été envoyé depuis un autre site \
             (Sec-Fetch-Site : {site}). Par sécurité, le CRM n'accepte que les formulaires \
             de ses propres pages : rouvrez la page dans le CRM et recommencez."
        ))),
        Some(CrossSite::Origin { origin, host }) => {
            let shown = if host.is_empty() { "aucune" } else { host.as_str() };
            Err(refused(format!(
                "Ce formulaire a été envoyé depuis la page d'un autre site (origine {origin}, \
                 adresse du CRM {shown}). Par sécurité, le CRM n'accepte que les formulaires \
                 de ses propres pages : rouvrez la page dans le CRM et recommencez."
            )))
        }
    }
}

/// [`same_origin`], then the form's CSRF token (the hidden `csrf` field every form of
/// the pages carries; see [`crate::access::Access::csrf_ok`]).
pub fn check_form<S>(state: &AppState<S>, headers: &HeaderMap, form: &FormData) -> Result<(), PageError> {
    same_origin(headers)?;
    if state.access.csrf_ok(headers, form.get("csrf")) {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Formulaire expiré",
            "Ce formulaire ne porte pas le jeton de votre session (page ouverte avant une reconnexion ou un \
             redémarrage du CRM, ou envoyée depuis un autre site). Rouvrez la page et recommencez.",
        ))
    }
}

fn refused(message: String) -> PageError {
    PageError::new(StatusCode::FORBIDDEN, "Formulaire refusé", message)
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
