use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{HeaderMap, HeaderValue, Method};

use super::*;

const TOKENS: &str =
    "reader:read-token-0123456789:read\nwriter:write-token-0123456789:write\nboss:admin-token-0123456789:admin\n";

fn access(tokens: bool, bound: &str, allowed: &[&str]) -> Access {
    let mut config = Config::new("unused");
    config.listen_addr = Some(bound.parse().unwrap());
    config.allowed_hosts = allowed.iter().map(|h| h.to_string()).collect();
    if tokens {
        config.tokens = Some(Arc::new(TokenSet::parse(TOKENS).unwrap()));
    }
    Access::new(&config)
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn peer(text: &str) -> Option<SocketAddr> {
    Some(text.parse().unwrap())
}

#[test]
fn without_tokens_only_loopback_peers_are_answered() {
    let access = access(false, "0.0.0.0:8000", &[]);
    let get = |from: &str| access.decide(&Method::GET, "/api/data", "", &headers(&[("host", "crm")]), peer(from));
    for local in [
        "127.0.0.1:5000",
        "127.8.9.1:5000",
        "[::1]:5000",
        "[::ffff:127.0.0.1]:5000",
    ] {
        assert_eq!(get(local), Ok(Principal::local()), "{local}");
    }
    for remote in [
        "192.168.1.20:5000",
        "10.0.0.1:1",
        "[fe80::1]:5000",
        "[::ffff:192.168.1.20]:5000",
    ] {
        let refusal = get(remote).unwrap_err();
        assert!(matches!(refusal, Refusal::LoopbackOnly(_)), "{remote}");
        let error = refusal.api_error();
        assert_eq!((error.status_code().as_u16(), error.code()), (403, "tokens_required"));
        let message = error.body()["error"].as_str().unwrap().to_string();
        assert!(
            message.contains("--tokens FILE") && message.contains("name:token:role"),
            "{message}"
        );
    }
    // /healthz too: protected mode answers nobody else.
    assert!(access
        .decide(&Method::GET, "/healthz", "", &HeaderMap::new(), peer("192.168.1.20:1"))
        .is_err());
}

#[test]
fn with_tokens_any_peer_with_a_token_is_answered() {
    let access = access(true, "0.0.0.0:8000", &[]);
    let auth = headers(&[("authorization", "Bearer read-token-0123456789")]);
    let principal = access
        .decide(&Method::GET, "/api/v1/customers", "", &auth, peer("192.168.1.20:5000"))
        .unwrap();
    assert_eq!((principal.name.as_str(), principal.role), ("reader", Role::Read));
    // Loopback is no exception once tokens exist.
    assert_eq!(
        access.decide(
            &Method::GET,
            "/api/v1/customers",
            "",
            &HeaderMap::new(),
            peer("127.0.0.1:1")
        ),
        Err(Refusal::Unauthenticated { invalid: false })
    );
}

#[test]
fn the_warning_at_start_is_for_a_non_loopback_address_without_tokens() {
    assert!(access(false, "0.0.0.0:8000", &[])
        .exposure_warning()
        .unwrap()
        .contains("--tokens"));
    assert!(access(false, "192.168.1.5:8000", &[]).exposure_warning().is_some());
    assert!(access(false, "127.0.0.1:8000", &[]).exposure_warning().is_none());
    assert!(access(false, "[::1]:8000", &[]).exposure_warning().is_none());
    assert!(access(true, "0.0.0.0:8000", &[]).exposure_warning().is_none());
}

#[test]
fn the_host_must_be_one_of_the_servers_names() {
    let access = access(false, "192.168.1.5:8000", &["crm.exemple.fr", "Shop.Local:9000"]);
    for ok in [
        "localhost",
        "localhost:8000",
        "LOCALHOST:1",
        "127.0.0.1",
        "127.0.0.1:8000",
        "[::1]:8000",
        "[::1]",
        "crm",
        "crm:8000",
        "192.168.1.5:8000",
        "crm.exemple.fr",
        "crm.exemple.fr:8443",
        "shop.local:9000",
    ] {
        assert!(access.host_allowed(Some(ok)), "{ok}");
    }
    for bad in [
        "evil.exemple",
        "evil.exemple:8000",
        "127.0.0.1.evil.exemple",
        "crm.evil",
        "shop.local",
        "shop.local:9001",
        "192.168.1.6:8000",
        "",
        "localhost:notaport",
    ] {
        assert!(!access.host_allowed(Some(bad)), "{bad}");
    }
    assert!(access.host_allowed(None), "no Host: an HTTP/1.0 client");
    let refused = access.decide(
        &Method::GET,
        "/api/data",
        "",
        &headers(&[("host", "rebound.evil:8000")]),
        peer("127.0.0.1:1"),
    );
    let error = refused.unwrap_err().api_error();
    assert_eq!((error.status_code().as_u16(), error.code()), (421, "host_not_allowed"));
}

#[test]
fn what_a_browser_marks_as_another_site_is_refused_on_every_route() {
    let access = access(false, "127.0.0.1:8000", &[]);
    for path in ["/api/data", "/api/get_tickets/bi", "/healthz", "/api/update_db"] {
        for marks in [
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![("origin", "http://127.0.0.1:9999")],
            vec![("origin", "null")],
        ] {
            let mut pairs = vec![("host", "127.0.0.1:8000")];
            pairs.extend(marks.iter().copied());
            let refused = access.decide(&Method::POST, path, "", &headers(&pairs), peer("127.0.0.1:1"));
            let error = refused.unwrap_err().api_error();
            assert_eq!(
                (error.status_code().as_u16(), error.code()),
                (403, "cross_site_request"),
                "{path} {marks:?}"
            );
        }
    }
    for fine in [
        vec![],
        vec![("sec-fetch-site", "same-origin"), ("origin", "http://127.0.0.1:8000")],
        vec![("sec-fetch-site", "none")],
    ] {
        let mut pairs = vec![("host", "127.0.0.1:8000")];
        pairs.extend(fine.iter().copied());
        assert!(access
            .decide(&Method::GET, "/api/data", "", &headers(&pairs), peer("127.0.0.1:1"))
            .is_ok());
    }
}

#[test]
fn each_route_class_needs_its_role() {
    use Need::{Open, Role as Needs};
    for (method, path, query, needed) in [
        (Method::GET, "/healthz", "", Open),
        (Method::GET, "/", "", Open),
        (Method::GET, "/api/assets/crm.css", "", Open),
        (Method::POST, "/api/login", "", Open),
        (Method::GET, "/api/data", "", Needs(super::Role::Read)),
        (Method::GET, "/api", "", Needs(super::Role::Read)),
        (Method::GET, "/api/v1/customers", "limit=2", Needs(super::Role::Read)),
        (Method::POST, "/api/data/x", "", Needs(super::Role::Read)),
        (Method::POST, "/api/customer/email", "", Needs(super::Role::Read)),
        (Method::GET, "/api/credit/33", "", Needs(super::Role::Read)),
        (Method::GET, "/api/get_tickets", "", Needs(super::Role::Read)),
        (Method::GET, "/api/v1/openapi.json", "", Needs(super::Role::Read)),
        (Method::GET, "/api/get_tickets/bi", "", Needs(super::Role::Write)),
        (Method::GET, "/api/credit", "", Needs(super::Role::Write)),
        (Method::POST, "/api/credit", "", Needs(super::Role::Write)),
        (Method::GET, "/api/paiement", "", Needs(super::Role::Write)),
        (Method::POST, "/api/create_customer", "", Needs(super::Role::Write)),
        (Method::PATCH, "/api/v1/customers/x", "", Needs(super::Role::Write)),
        (Method::POST, "/api/customers", "", Needs(super::Role::Write)),
        (Method::POST, "/api/update_db", "", Needs(super::Role::Write)),
        (
            Method::POST,
            "/api/update_db",
            "mode=merge&dry_run=1",
            Needs(super::Role::Write),
        ),
        (
            Method::POST,
            "/api/update_db",
            "mode=replace",
            Needs(super::Role::Admin),
        ),
        (
            Method::POST,
            "/api/update_db",
            "mode=merge&mode=replace",
            Needs(super::Role::Admin),
        ),
        (Method::DELETE, "/api/v1/customers/x", "", Needs(super::Role::Admin)),
        (Method::GET, "/api/v1/export", "", Needs(super::Role::Admin)),
        (Method::GET, "/api/v1/audit", "customer=x", Needs(super::Role::Admin)),
    ] {
        assert_eq!(need(&method, path, query), needed, "{method} {path}?{query}");
    }
}

#[test]
fn a_token_below_the_routes_role_is_a_403_and_a_bad_one_a_401() {
    let access = access(true, "127.0.0.1:8000", &[]);
    let with = |token: &str, method: Method, path: &str| {
        let auth = format!("Bearer {token}");
        access.decide(
            &method,
            path,
            "",
            &headers(&[("authorization", &auth)]),
            peer("127.0.0.1:1"),
        )
    };
    assert!(with("read-token-0123456789", Method::GET, "/api/data").is_ok());
    let refused = with("read-token-0123456789", Method::POST, "/api/credit").unwrap_err();
    assert_eq!(refused.api_error().code(), "role_too_small");
    assert_eq!(refused.status().as_u16(), 403);
    assert!(with("write-token-0123456789", Method::POST, "/api/credit").is_ok());
    assert!(with("write-token-0123456789", Method::DELETE, "/api/v1/customers/x").is_err());
    assert!(with("admin-token-0123456789", Method::DELETE, "/api/v1/customers/x").is_ok());
    assert_eq!(
        with("admin-token-012345678", Method::GET, "/api/data"),
        Err(Refusal::Unauthenticated { invalid: true })
    );
    let basic = access.decide(
        &Method::GET,
        "/api/data",
        "",
        &headers(&[("authorization", "Basic YWRtaW4=")]),
        None,
    );
    assert_eq!(basic, Err(Refusal::Unauthenticated { invalid: true }));
}

#[test]
fn a_session_cookie_stands_for_its_token_and_its_forms_need_its_csrf() {
    let access = access(true, "127.0.0.1:8000", &[]);
    let principal = TokenSet::parse(TOKENS)
        .unwrap()
        .holder("write-token-0123456789")
        .unwrap();
    let id = access.sessions.open(principal.clone());
    let cookie = format!("theme=dark; crm_session={id}");
    let browser = headers(&[("cookie", &cookie)]);
    assert_eq!(
        access.decide(&Method::POST, "/api/customers", "", &browser, None),
        Ok(principal)
    );
    let csrf = access.csrf_for(&browser).unwrap();
    assert_ne!(csrf, access.sessions.anonymous_csrf());
    assert!(access.csrf_ok(&browser, Some(&csrf)));
    assert!(!access.csrf_ok(&browser, None), "a cookie post without its token");
    assert!(!access.csrf_ok(&browser, Some(access.sessions.anonymous_csrf())));
    // Without a session: the server's own token, or none at all (a script).
    let script = HeaderMap::new();
    assert_eq!(
        access.csrf_for(&script).as_deref(),
        Some(access.sessions.anonymous_csrf())
    );
    assert!(access.csrf_ok(&script, None));
    assert!(access.csrf_ok(&script, Some(access.sessions.anonymous_csrf())));
    assert!(!access.csrf_ok(&script, Some("forged")));
    // Without tokens the forms carry none.
    assert_eq!(Access::new(&Config::new("unused")).csrf_for(&browser), None);
    access.sessions.close(&id);
    assert_eq!(
        access.decide(&Method::POST, "/api/customers", "", &browser, None),
        Err(Refusal::Unauthenticated { invalid: false })
    );
}
