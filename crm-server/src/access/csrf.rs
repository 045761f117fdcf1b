//! The pages' sessions and CSRF tokens.
//!
//! After the login form, the browser holds a cookie with a random session id, never
//! the token itself: the token is a long-lived secret that scripts use too, and a
//! session id can be short-lived (12 hours), ended by the logout button, and is
//! worthless once the server restarts. The cookie is `HttpOnly` (no script reads it)
//! and `SameSite=Strict` (no other site's page makes the browser send it).
//!
//! Each session has its own CSRF token, a second random value that every form of the
//! pages carries in a hidden `csrf` field and that a form post authenticated by the
//! cookie must repeat. Without a session (no tokens configured, or the login form
//! itself) forms carry the server's own random value, drawn at start.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::tokens::Principal;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "crm_session";
/// How long a session lasts after the login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at most: past it, the oldest is dropped (logged out).
const MAX_SESSIONS: usize = 10_000;

/// 32 random bytes from the operating system, as hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // Without the OS's generator nothing here can be secret: better not to serve.
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    hex::encode(bytes)
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    expires: Instant,
}

/// The open sessions, in memory.
#[derive(Debug)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    /// The CSRF token of forms shown outside any session.
    anonymous_csrf: String,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            open: Mutex::default(),
            anonymous_csrf: random_hex(),
        }
    }
}

impl Sessions {
    /// Opens a session for `principal`; answers its id.
    pub fn open(&self, principal: Principal) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(id, _)| id.clone()) {
                open.remove(&oldest);
            }
        }
        open.insert(
            id.clone(),
            Session {
                principal,
                csrf: random_hex(),
                expires: now + SESSION_LIFETIME,
            },
        );
        id
    }

    /// The live session `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub fn close(&self, id: &str) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    pub fn anonymous_csrf(&self) -> &str {
        &self.anonymous_csrf
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` of a new session.
pub fn session_cookie(id: &str) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` that removes the session cookie.
pub fn expired_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_closed() {
        let sessions = Sessions::default();
        let id = sessions.open(Principal::local());
        let session = sessions.get(&id).expect("open");
        assert_eq!(session.principal, Principal::local());
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(session.csrf, id);
        assert_ne!(session.csrf, sessions.anonymous_csrf());
        assert!(sessions.get("nope").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn cookies_are_read_by_name() {
        assert_eq!(cookie("a=1; crm_session=abc ;b=2", SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie("crm_sessionx=1", SESSION_COOKIE), None);
        assert!(session_cookie("x").contains("HttpOnly; SameSite=Strict"));
    }
}
