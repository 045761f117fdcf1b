//! The login form of the pages, once tokens are configured: `GET /api/login` asks for
//! a token, `POST /api/login` opens a session (an `HttpOnly`, `SameSite=Strict`
//! cookie, see [`crate::access::csrf`]) and goes back to the page asked for,
//! `POST /api/logout` ends it.

use askama::Template;
use bytes::Bytes;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::forms::FormData;
use super::{guard, render, see_other, PageError};
use crate::access::csrf::{expired_cookie, same_secret, session_cookie};
use crate::error::ApiError;
use crate::http::{body_limited, raw_query};
use crate::state::AppState;
use crate::store::Store;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    tokens_configured: bool,
    /// The token name of the session already open.
    user: Option<String>,
    error: Option<String>,
    next: String,
    csrf: Option<String>,
}

pub fn routes<S: Store>(state: AppState<S>, limit: u64) -> BoxedFilter<(Response,)> {
    let with_state = warp::any().map(move || state.clone());
    let form = warp::path!("api" / "login")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .and(raw_query())
        .map(login_form);
    let log_in = warp::path!("api" / "login")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .and(body_limited(limit))
        .map(log_in);
    let log_out = warp::path!("api" / "logout")
        .and(warp::post())
        .and(with_state)
        .and(warp::header::headers_cloned())
        .and(body_limited(limit))
        .map(log_out);
    form.or(log_in).unify().or(log_out).unify().boxed()
}

/// The login form (HTML): a token, asked once.
#[utoipa::path(get, path = "/api/login", tag = "pages", operation_id = "login_page",
    params(("next" = Option<String>, Query, description = "The page to go back to once logged in (a path of this service)")),
    responses((status = 200, description = "The form", content_type = "text/html", body = String)))]
pub(crate) fn login_form<S: Store>(state: AppState<S>, headers: HeaderMap, query: String) -> Response {
    let next = serde_urlencoded::from_str::<Vec<(String, String)>>(&query)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "next").map(|(_, v)| v));
    login_page(&state, &headers, safe_next(next.as_deref()), None, StatusCode::OK)
}

/// Where to go after the login: a path of this service, never another site's
/// (`//evil`, `/\evil`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => next.to_string(),
        _ => "/api".to_string(),
    }
}

fn login_page<S>(
    state: &AppState<S>,
    headers: &HeaderMap,
    next: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let page = LoginPage {
        tokens_configured: state.access.tokens_configured(),
        user: state.access.session(headers).map(|s| s.principal.name),
        error,
        next,
        csrf: state.access.csrf_for(headers),
    };
    render(&page, status)
}

/// Opens a session for the token typed: `303` to `next` with the session cookie, or
/// the form again (`401`) when the token is unknown. The form must carry its CSRF
/// token, so that no other page can log a browser in as someone else.
#[utoipa::path(post, path = "/api/login", tag = "pages", operation_id = "log_in",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`token`, `csrf` (the form's hidden field), `next`"),
    responses((status = 303, description = "Logged in: to `next`, with the `crm_session` cookie (HttpOnly, SameSite=Strict)"),
        (status = 401, description = "Unknown token: the form again (HTML page)", content_type = "text/html", body = String),
        (status = 403, description = "No or wrong CSRF token, or sent from another site (HTML page)", content_type = "text/html", body = String)))]
pub(crate) fn log_in<S: Store>(state: AppState<S>, headers: HeaderMap, body: Result<Bytes, ApiError>) -> Response {
    let outcome = (|| {
        let form = FormData::read(body)?;
        guard::same_origin(&headers)?;
        let csrf_ok = form
            .get("csrf")
            .zip(state.access.csrf_for(&headers))
            .is_some_and(|(posted, expected)| same_secret(&expected, posted));
        if !csrf_ok {
            return Err(expired());
        }
        let next = safe_next(form.get("next"));
        let Some((session, principal)) = state.access.log_in(form.get("token").unwrap_or_default()) else {
            let error = if state.access.tokens_configured() {
                "Ce jeton n'est pas valable. Vérifiez-le et recommencez."
            } else {
                "Ce serveur n'a pas de jetons configurés : aucune connexion n'est nécessaire."
            };
            return Ok(login_page(
                &state,
                &headers,
                next,
                Some(error.into()),
                StatusCode::UNAUTHORIZED,
            ));
        };
        // The name only: a token is never logged.
        tracing::info!(token = %principal.name, role = %principal.role, "pages: logged in");
        let mut response = see_other(&next);
        if let Ok(cookie) = HeaderValue::from_str(&session_cookie(&session)) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        Ok(response)
    })();
    outcome.unwrap_or_else(PageError::into_response)
}

/// Ends the session, then back to the login form.
#[utoipa::path(post, path = "/api/logout", tag = "pages", operation_id = "log_out",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf`, the form's hidden field"),
    responses((status = 303, description = "Logged out: to the login form, the cookie removed"),
        (status = 403, description = "Wrong CSRF token, or sent from another site (HTML page)", content_type = "text/html", body = String)))]
pub(crate) fn log_out<S: Store>(state: AppState<S>, headers: HeaderMap, body: Result<Bytes, ApiError>) -> Response {
    let outcome = (|| {
        let form = FormData::read(body)?;
        guard::check_form(&state, &headers, &form)?;
        state.access.log_out(&headers);
        let mut response = see_other("/api/login");
        if let Ok(cookie) = HeaderValue::from_str(&expired_cookie()) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        Ok::<_, PageError>(response)
    })();
    outcome.unwrap_or_else(PageError::into_response)
}

fn expired() -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        "Formulaire expiré",
        "Ce formulaire de connexion a expiré (CRM redémarré, ou page envoyée depuis un autre site). Rouvrez la page \
         de connexion et recommencez.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_service_are_followed_after_the_login() {
        assert_eq!(
            safe_next(Some("/api/customers/x?notice=1")),
            "/api/customers/x?notice=1"
        );
        for bad in [
            None,
            Some(""),
            Some("//evil.exemple/"),
            Some("/\\evil"),
            Some("https://evil.exemple/"),
        ] {
            assert_eq!(safe_next(bad), "/api", "{bad:?}");
        }
    }
}
