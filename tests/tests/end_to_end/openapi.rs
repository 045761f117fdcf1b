//! The OpenAPI document covers every `/api` route the server answers.

use crm_tests::{spawn_app, status_and_json};

/// Every route of the server as (method, OpenAPI path). A new route must be added here
/// and to the document.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/api/data"),
    ("get", "/api/data/{IdClient}"),
    ("post", "/api/data/{slug}"),
    ("post", "/api/customer/email"),
    ("post", "/api/create_customer"),
    ("get", "/api/v1/customers"),
    ("post", "/api/v1/customers"),
    ("get", "/api/v1/customers/{IdClient}"),
    ("patch", "/api/v1/customers/{IdClient}"),
    ("delete", "/api/v1/customers/{IdClient}"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api"),
    ("get", "/api/update_db"),
    ("post", "/api/update_db"),
    ("get", "/api/v1/imports/current"),
    ("get", "/api/v1/imports/{id}"),
    ("get", "/api/customers/{IdClient}"),
    ("get", "/api/customers/new"),
    ("post", "/api/customers"),
    ("get", "/api/customers/{IdClient}/edit"),
    ("post", "/api/customers/{IdClient}/edit"),
    ("post", "/api/customers/{IdClient}/card"),
    ("post", "/api/customers/{IdClient}/credit"),
    ("post", "/api/customers/{IdClient}/refusals/reset"),
    ("get", "/api/assets/crm.css"),
    ("get", "/api/login"),
    ("post", "/api/login"),
    ("post", "/api/logout"),
    ("post", "/api/credit"),
    ("get", "/api/credit"),
    ("get", "/api/credit_ecommerce"),
    ("post", "/api/credit_ecommerce"),
    ("get", "/api/paiement"),
    ("post", "/api/paiement"),
    ("get", "/api/credit/{carteFid}"),
    ("post", "/api/v1/customers/{IdClient}/card"),
    ("get", "/api/v1/customers/{IdClient}/ledger"),
    ("post", "/api/v1/tickets"),
    ("get", "/api/v1/tickets"),
    ("get", "/api/v1/customers/{IdClient}/tickets"),
    ("get", "/api/get_tickets"),
    ("get", "/api/get_tickets/{consumer}"),
    ("post", "/api/allow_credit"),
    ("get", "/api/v1/customers/{IdClient}/payments"),
    ("get", "/api/v1/payments"),
    ("post", "/api/v1/payments/{id}/result"),
    ("post", "/api/v1/customers/{IdClient}/refusals/reset"),
];

#[tokio::test]
async fn the_document_lists_every_route_and_only_routes_that_answer() {
    let app = spawn_app().await;
    let (status, doc) = status_and_json(app.get("/api/v1/openapi.json").await).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    assert_eq!(documented, expected);

    // Each documented route exists: it answers something other than route_not_found.
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{IdClient}", "a14e39ce-e29e-11e9-a8cb-08002751d198")
            .replace("{slug}", "x")
            .replace("{carteFid}", "33")
            .replace("{consumer}", "bi")
            .replace("{id}", "1");
        let request = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
            .body("{}");
        let response = request.send().await.unwrap();
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("route_not_found"),
            "{method} {path} is documented but not served"
        );
    }
}
