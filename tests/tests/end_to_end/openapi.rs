//! The OpenAPI document covers every `/api` route the server answers.

use crm_tests::{spawn_app, status_and_json, TestApp};
use serde_json::{json, Value};

/// Every route of the server as (method, OpenAPI path). A new route must be added here
/// and to the document.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/api/data"),
    ("get", "/api/data/{IdClient}"),
    ("post", "/api/data/{IdClient}"),
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
    ("get", "/api/v1/export"),
    ("get", "/api/v1/audit"),
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

/// The served document and the (method, path, status) answers checked against it.
struct Conformance {
    doc: Value,
    checked: std::collections::BTreeSet<(String, String)>,
}

impl Conformance {
    async fn of(app: &TestApp) -> Conformance {
        let (status, doc) = status_and_json(app.get("/api/v1/openapi.json").await).await;
        assert_eq!(status, 200);
        Conformance {
            doc,
            checked: Default::default(),
        }
    }

    /// Sends `request` and checks its answer against what the document says `method
    /// template` answers with that status: the status is listed, and a JSON body is valid
    /// under the listed schema. Returns the status and the body.
    async fn check(&mut self, method: &str, template: &str, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let operation = &self.doc["paths"][template][method];
        assert!(operation.is_object(), "{method} {template} is not in the document");
        let answer = &operation["responses"][status.to_string()];
        assert!(
            answer.is_object(),
            "{method} {template} answered {status}, which the document does not list: {text}"
        );
        let body: Value = if content_type.starts_with("application/json") {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {template}: {e}: {text}"))
        } else {
            Value::Null
        };
        if let Some(schema) = answer["content"]["application/json"].get("schema") {
            assert!(
                content_type.starts_with("application/json"),
                "{method} {template} {status} is documented as JSON, answered {content_type}"
            );
            // The operation's schema, with the document's components for its `$ref`s.
            let root = json!({"allOf": [schema], "components": self.doc["components"]});
            let validator = jsonschema::draft202012::new(&root).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {template} {status} does not match its schema: {errors:#?}\n{body:#}"
            );
        }
        self.checked.insert((method.to_string(), template.to_string()));
        (status, body)
    }

    /// The errors of `value` under the document's component `name`.
    fn errors_under(&self, name: &str, value: &Value) -> Vec<String> {
        let root = json!({"$ref": format!("#/components/schemas/{name}"), "components": self.doc["components"]});
        let validator = jsonschema::draft202012::new(&root).unwrap();
        validator.iter_errors(value).map(|e| e.to_string()).collect()
    }
}

fn ticket_body(id: u64, client: &str) -> Value {
    json!({"id": id, "date": "2019-10-09T17:01:29.408701Z", "prix": 900, "client": client,
        "pointsFidelite": 0, "modePaiement": "CARD", "Promo_client": null,
        "articles": [{"codeProduit": "X1-0", "prixAvant": 800, "prixApres": 400, "promo": null, "quantity": 2},
            {"codeProduit": "X2", "prixAvant": 500, "prixApres": 500, "promo": 10, "quantity": 1}]})
}

/// Real answers of every JSON route, successes and errors, with the values that once
/// escaped the document (`Sexe` `""`, a `carteFid` that is a number or an IdClient, null
/// dates and discounts), validated against the served document's schemas.
#[tokio::test]
async fn every_json_answer_matches_the_documented_schema() {
    let app = spawn_app().await;
    let mut doc = Conformance::of(&app).await;
    let c = &app.client;
    let u = |p: &str| app.url(p);
    let unknown = "a14e39ce-e29e-11e9-a8cb-08002751d198";

    // The validation bites: a Sexe outside its enum, a card number as text, are refused.
    let (_, sample) = doc
        .check("get", "/api/v1/customers", c.get(u("/api/v1/customers")))
        .await;
    assert_eq!(sample["items"], json!([]));
    let served = json!({"id": 1, "IdClient": "a14e39ce-e29e-11e9-a8cb-08002751d198", "Nom": "A", "Prenom": "",
        "Credit": 0, "Date_paiement": null, "Montant": 0, "NbRefus": 0, "Compte": "", "Age": null, "Sexe": "",
        "Email": "", "Phone": "", "PanierMoyen": 0, "CarteFid": null});
    assert_eq!(doc.errors_under("Customer", &served), Vec::<String>::new());
    let mut wrong = served.clone();
    wrong["Sexe"] = json!("x");
    wrong["CarteFid"] = json!("33");
    assert_eq!(
        doc.errors_under("Customer", &wrong).len(),
        2,
        "{:?}",
        doc.errors_under("Customer", &wrong)
    );

    // Customers: the document's shape (Sexe ""), the API's, and every error.
    let (status, created) = doc
        .check("post", "/api/create_customer", c.post(u("/api/create_customer")).json(
            &json!({"name": "Ana", "last_name": "Lopez", "sexe": "", "age": 30, "mail": "ana@x.fr", "phone": "0601"}),
        ))
        .await;
    assert_eq!(status, 200);
    let ana = created["idClient"].as_str().unwrap().to_string();
    let (status, bob) = doc
        .check(
            "post",
            "/api/v1/customers",
            c.post(u("/api/v1/customers"))
                .json(&json!({"Nom": "Martin", "Prenom": "Bob", "Sexe": "h", "Email": "bob@x.fr", "Credit": 120})),
        )
        .await;
    assert_eq!((status, &bob["Sexe"]), (201, &json!("h")));
    let bob = bob["IdClient"].as_str().unwrap().to_string();
    for (status, body) in [
        (409, json!({"Nom": "X", "Email": "ana@x.fr"})),
        (422, json!({"Nom": "", "Age": 400})),
    ] {
        let (got, _) = doc
            .check("post", "/api/v1/customers", c.post(u("/api/v1/customers")).json(&body))
            .await;
        assert_eq!(got, status);
        let (got, _) = doc
            .check(
                "post",
                "/api/create_customer",
                c.post(u("/api/create_customer")).json(&body),
            )
            .await;
        assert_eq!(got, status);
    }
    let (status, _) = doc
        .check(
            "post",
            "/api/v1/customers",
            c.post(u("/api/v1/customers")).body("{\"Nom\":"),
        )
        .await;
    assert_eq!(status, 400);

    let (status, one) = doc
        .check("get", "/api/data/{IdClient}", c.get(u(&format!("/api/data/{ana}"))))
        .await;
    assert_eq!((status, &one[0]["Sexe"]), (200, &json!("")));
    doc.check("get", "/api/data/{IdClient}", c.get(u(&format!("/api/data/{unknown}"))))
        .await;
    doc.check("get", "/api/data", c.get(u("/api/data"))).await;
    for (template, path) in [
        ("/api/data/{IdClient}", "/api/data/x"),
        ("/api/customer/email", "/api/customer/email"),
    ] {
        for body in [json!({"email": "ANA@x.fr"}), json!({"email": "nobody@x.fr"}), json!({})] {
            doc.check("post", template, c.post(u(path)).json(&body)).await;
        }
    }
    doc.check(
        "get",
        "/api/v1/customers",
        c.get(u("/api/v1/customers?limit=1&sort=-Nom")),
    )
    .await;
    doc.check("get", "/api/v1/customers", c.get(u("/api/v1/customers?limit=0")))
        .await;
    let customer = |id: &str| format!("/api/v1/customers/{id}");
    doc.check("get", "/api/v1/customers/{IdClient}", c.get(u(&customer(&ana))))
        .await;
    doc.check("get", "/api/v1/customers/{IdClient}", c.get(u(&customer(unknown))))
        .await;
    for body in [
        json!({"Phone": "0602", "Age": null, "Sexe": "f"}),
        json!({"Email": "bob@x.fr"}),
        json!({"NbRefus": 2}),
    ] {
        doc.check(
            "patch",
            "/api/v1/customers/{IdClient}",
            c.patch(u(&customer(&ana))).json(&body),
        )
        .await;
    }
    doc.check(
        "patch",
        "/api/v1/customers/{IdClient}",
        c.patch(u(&customer(unknown))).json(&json!({})),
    )
    .await;

    // Cards and credit: carteFid answered as a number and as an IdClient.
    let (status, carded) = doc
        .check(
            "post",
            "/api/v1/customers/{IdClient}/card",
            c.post(u(&format!("{}/card", customer(&bob)))),
        )
        .await;
    assert_eq!(status, 200);
    let card = carded["CarteFid"].as_u64().unwrap();
    doc.check(
        "post",
        "/api/v1/customers/{IdClient}/card",
        c.post(u(&format!("{}/card", customer(unknown)))),
    )
    .await;
    for card in [card.to_string(), bob.clone(), "999999".to_string()] {
        doc.check(
            "get",
            "/api/credit/{carteFid}",
            c.get(u(&format!("/api/credit/{card}"))),
        )
        .await;
    }
    let batch = json!({"Tickets": [{"carteFid": card, "Montant": 300, "id": "t1"}, {"carteFid": bob, "Montant": 100},
        {"carteFid": 424242, "Montant": 50}, {"carteFid": null, "Montant": 10}]});
    let (status, answer) = doc
        .check("post", "/api/credit", c.post(u("/api/credit")).json(&batch))
        .await;
    assert_eq!((status, answer["errors"][0]["carteFid"].as_u64()), (200, Some(424242)));
    let (status, _) = doc
        .check("post", "/api/credit", c.post(u("/api/credit")).json(&json!({})))
        .await;
    assert_eq!(status, 200);
    doc.check(
        "post",
        "/api/credit",
        c.post(u("/api/credit")).json(&json!({"Tickets": [{"carteFid": card}]})),
    )
    .await;
    doc.check(
        "post",
        "/api/credit",
        c.post(u("/api/credit")).json(&json!({"Tickets": 3})),
    )
    .await;
    doc.check("get", "/api/credit", c.get(u("/api/credit"))).await;
    let ledger = format!("{}/ledger", customer(&bob));
    doc.check("get", "/api/v1/customers/{IdClient}/ledger", c.get(u(&ledger)))
        .await;
    doc.check(
        "get",
        "/api/v1/customers/{IdClient}/ledger",
        c.get(u(&format!("{ledger}?cursor=x"))),
    )
    .await;
    doc.check(
        "get",
        "/api/v1/customers/{IdClient}/ledger",
        c.get(u(&format!("{}/ledger", customer(unknown)))),
    )
    .await;

    // Tickets: a known customer's, an unmatched one, a bad batch, and every listing.
    let batch = json!({"origin": "magasin", "tickets": [ticket_body(1, &bob), ticket_body(2, "nobody@x.fr")]});
    let (status, _) = doc
        .check("post", "/api/v1/tickets", c.post(u("/api/v1/tickets")).json(&batch))
        .await;
    assert_eq!(status, 200);
    let bad = json!({"tickets": [{"id": 3, "prix": -1}]});
    doc.check("post", "/api/v1/tickets", c.post(u("/api/v1/tickets")).json(&bad))
        .await;
    doc.check("post", "/api/v1/tickets", c.post(u("/api/v1/tickets")).json(&json!([])))
        .await;
    doc.check("get", "/api/v1/tickets", c.get(u("/api/v1/tickets?limit=1")))
        .await;
    doc.check("get", "/api/v1/tickets", c.get(u("/api/v1/tickets?limit=x")))
        .await;
    let tickets = format!("{}/tickets", customer(&bob));
    doc.check("get", "/api/v1/customers/{IdClient}/tickets", c.get(u(&tickets)))
        .await;
    doc.check(
        "get",
        "/api/v1/customers/{IdClient}/tickets",
        c.get(u(&format!("{}/tickets", customer(unknown)))),
    )
    .await;
    doc.check("get", "/api/get_tickets", c.get(u("/api/get_tickets"))).await;
    doc.check("get", "/api/get_tickets/{consumer}", c.get(u("/api/get_tickets/bi")))
        .await;
    doc.check(
        "get",
        "/api/get_tickets/{consumer}",
        c.get(u(&format!("/api/get_tickets/{}", "x".repeat(101)))),
    )
    .await;

    // Deferred payments and their results.
    let allow = |body: Value| c.post(u("/api/allow_credit")).json(&body);
    let (status, _) = doc
        .check(
            "post",
            "/api/allow_credit",
            allow(json!({"idClient": bob, "Montant": 2500, "Date": "2019-12-06"})),
        )
        .await;
    assert_eq!(status, 200);
    doc.check(
        "post",
        "/api/allow_credit",
        allow(json!({"idClient": unknown, "Montant": 10, "Date": "2019-12-06"})),
    )
    .await;
    doc.check(
        "post",
        "/api/allow_credit",
        allow(json!({"idClient": bob, "Montant": 0})),
    )
    .await;
    doc.check("post", "/api/allow_credit", c.post(u("/api/allow_credit")).body("["))
        .await;
    let payments = format!("{}/payments", customer(&bob));
    let (_, page) = doc
        .check("get", "/api/v1/customers/{IdClient}/payments", c.get(u(&payments)))
        .await;
    let payment = page["items"][0]["id"].as_u64().unwrap();
    doc.check(
        "get",
        "/api/v1/customers/{IdClient}/payments",
        c.get(u(&format!("{}/payments", customer(unknown)))),
    )
    .await;
    doc.check("get", "/api/v1/payments", c.get(u("/api/v1/payments?due=2019-12-31")))
        .await;
    doc.check("get", "/api/v1/payments", c.get(u("/api/v1/payments?due=tomorrow")))
        .await;
    let result = |id: u64, body: Value| c.post(u(&format!("/api/v1/payments/{id}/result"))).json(&body);
    for (id, body) in [
        (payment, json!({"status": "ERROR"})),
        (payment, json!({"status": "OK"})),
        (payment, json!({})),
        (77, json!({"status": "OK"})),
    ] {
        doc.check("post", "/api/v1/payments/{id}/result", result(id, body))
            .await;
    }
    let reset = |id: &str| c.post(u(&format!("{}/refusals/reset", customer(id))));
    doc.check("post", "/api/v1/customers/{IdClient}/refusals/reset", reset(&bob))
        .await;
    doc.check("post", "/api/v1/customers/{IdClient}/refusals/reset", reset(unknown))
        .await;

    // The scheduler's calls, without a gateway: summaries that say so.
    for template in ["/api/credit_ecommerce", "/api/paiement"] {
        doc.check("get", template, c.get(u(template))).await;
        doc.check("post", template, c.post(u(template)).json(&json!({}))).await;
    }

    // Imports: a report, a bad row, an unreadable file, and the import by its id.
    let import = |query: &str, body: &str| c.post(u(&format!("/api/update_db{query}"))).body(body.to_string());
    let (status, report) = doc
        .check(
            "post",
            "/api/update_db",
            import("", "{\"Nom\":\"Imp\",\"Email\":\"imp@x.fr\",\"Sexe\":\"\"}\n"),
        )
        .await;
    assert_eq!(status, 200);
    doc.check("post", "/api/update_db", import("?dry_run=true", "[{\"Nom\":\"\"}]"))
        .await;
    doc.check("post", "/api/update_db", import("?mode=sideways", "[]"))
        .await;
    doc.check("post", "/api/update_db", import("", "{\"Nom\":\"Cut")).await;
    if let Some(id) = report["import_id"].as_str() {
        doc.check(
            "get",
            "/api/v1/imports/{id}",
            c.get(u(&format!("/api/v1/imports/{id}"))),
        )
        .await;
    }
    doc.check(
        "get",
        "/api/v1/imports/{id}",
        c.get(u(&format!("/api/v1/imports/{unknown}"))),
    )
    .await;
    doc.check("get", "/api/v1/imports/current", c.get(u("/api/v1/imports/current")))
        .await;

    // Erasure last: the erased customer answers blanked.
    doc.check("delete", "/api/v1/customers/{IdClient}", c.delete(u(&customer(&ana))))
        .await;
    doc.check(
        "delete",
        "/api/v1/customers/{IdClient}",
        c.delete(u(&customer(unknown))),
    )
    .await;
    doc.check("get", "/api/v1/customers/{IdClient}", c.get(u(&customer(&ana))))
        .await;
    doc.check("get", "/healthz", c.get(u("/healthz"))).await;

    // The dump, and the login forms refused without their CSRF token.
    doc.check("get", "/api/v1/export", c.get(u("/api/v1/export"))).await;
    // The audit trail of everything above, a page of it, one customer's, and a 400.
    doc.check("get", "/api/v1/audit", c.get(u("/api/v1/audit?limit=3&order=desc")))
        .await;
    doc.check(
        "get",
        "/api/v1/audit",
        c.get(u(&format!("/api/v1/audit?customer={ana}"))),
    )
    .await;
    doc.check("get", "/api/v1/audit", c.get(u("/api/v1/audit?after=x")))
        .await;
    let form = |path: &str, body: &'static str| {
        c.post(u(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    doc.check("post", "/api/login", form("/api/login", "token=nope&csrf=wrong"))
        .await;
    doc.check("post", "/api/logout", form("/api/logout", "csrf=wrong"))
        .await;

    // Every route whose answer is JSON was checked.
    let json_routes: Vec<(String, String)> = ROUTES
        .iter()
        .filter(|(method, path)| {
            let answers = &doc.doc["paths"][*path][*method]["responses"];
            answers
                .as_object()
                .unwrap()
                .values()
                .any(|a| a["content"].get("application/json").is_some())
        })
        .filter(|(_, path)| *path != "/api/v1/openapi.json")
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = json_routes.iter().filter(|r| !doc.checked.contains(r)).collect();
    assert!(
        missing.is_empty(),
        "JSON routes whose answers were not checked: {missing:?}"
    );
}

/// A `405` says which methods its path takes.
#[tokio::test]
async fn a_wrong_method_is_a_405_naming_the_methods_of_its_path() {
    let app = spawn_app().await;
    for (method, path, allowed) in [
        ("PUT", "/api/v1/customers", "GET, POST"),
        (
            "POST",
            "/api/v1/customers/a14e39ce-e29e-11e9-a8cb-08002751d198",
            "GET, PATCH, DELETE",
        ),
        ("DELETE", "/api/data/x", "GET, POST"),
        ("GET", "/api/allow_credit", "POST"),
        ("PUT", "/api/paiement", "GET, POST"),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allowed),
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed");
    }
}

/// A JSON line cut off makes the import a `400` that names its line, and nothing is
/// written.
#[tokio::test]
async fn a_cut_off_json_line_is_a_400_naming_its_line() {
    let app = spawn_app().await;
    let file = "{\"Nom\":\"A\",\"Email\":\"a@x.fr\"}\n\n{\"Nom\":\"B\",\"Em\n{\"Nom\":\"C\"}\n";
    let (status, body) = status_and_json(app.post_raw("/api/update_db", file).await).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "bad_request");
    assert!(body["error"].as_str().unwrap().contains("line 3"), "{body}");
    let (status, body) = status_and_json(app.post_raw("/api/update_db", "{\"Nom\":\"A\"}\n{\"Nom\": [1,").await).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 2"), "{body}");
    assert!(app.all_customers().await.is_empty());
}
