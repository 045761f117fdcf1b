//! The customer routes end to end: create (both shapes), read by id and e-mail, list,
//! PATCH, DELETE, and every error class they answer.

use crm_tests::{assert_error, spawn_app, status_and_json};
use serde_json::{json, Value};

fn jon() -> Value {
    json!({"name": "Jon", "last_name": "Doe", "sexe": "f", "age": 23, "mail": "jon.doe@mail.com", "phone": "+33638614907"})
}

#[tokio::test]
async fn create_with_the_documents_shape_then_read_it_back_by_id() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&jon()).await;

    let (status, body) = app.customer_as_list(&id).await;
    assert_eq!(status, 200);
    let list = body.as_array().expect("one-element array");
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!(c["IdClient"], id.as_str());
    assert_eq!((c["Nom"].as_str(), c["Prenom"].as_str()), (Some("Doe"), Some("Jon")));
    assert_eq!((c["Sexe"].as_str(), c["Age"].as_u64()), (Some("f"), Some(23)));
    assert_eq!(c["Email"], "jon.doe@mail.com");
    assert_eq!(c["Phone"], "+33638614907");
    assert_eq!(
        (c["Credit"].as_u64(), c["Montant"].as_u64(), c["NbRefus"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(c["id"], 1);
    assert!(c["CarteFid"].is_null() && c["Date_paiement"].is_null() && c["Age"].is_u64());

    let (status, v1) = app.customer(&id).await;
    assert_eq!(status, 200);
    assert_eq!(&v1, c, "every route answers the same customer object");
}

#[tokio::test]
async fn create_with_the_older_clients_shape_keeps_opening_credit_in_cents() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(&json!({"Nom": "Eddison-53", "Prenom": "Anne", "email": "anne@ursi.fr",
            "Credit": 154.62542724609375, "Paiement": 25, "Compte": "BKN1CST53"}))
        .await;
    let (_, c) = app.customer(&id).await;
    assert_eq!(c["Credit"], 155);
    assert_eq!(c["Compte"], "BKN1CST53");
    assert_eq!(c["Nom"], "Eddison-53");
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_naming_the_holder_whatever_its_case() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&jon()).await;
    let (status, body) = app
        .create_customer(&json!({"Nom": "Other", "email": "JON.DOE@mail.com"}))
        .await;
    assert_error(status, &body, 409, "email_taken");
    assert_eq!(body["idClient"], id.as_str());
    assert_eq!(app.all_customers().await.len(), 1, "nothing was written");
}

#[tokio::test]
async fn invalid_fields_are_all_listed_with_422_and_nothing_is_written() {
    let app = spawn_app().await;
    let (status, body) = app
        .create_customer(&json!({"Prenom": "X", "email": "nope", "age": 200, "sexe": "m", "Credit": -5}))
        .await;
    assert_error(status, &body, 422, "invalid_fields");
    let mut fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["Age", "Credit", "Email", "Nom", "Sexe"]);
    assert!(app.all_customers().await.is_empty());
}

#[tokio::test]
async fn lookup_by_email_at_both_routes_ignores_case() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&jon()).await;

    let (status, c) = app.customer_by_email("Jon.Doe@MAIL.com").await;
    assert_eq!(status, 200);
    assert_eq!(c["IdClient"], id.as_str());

    let (status, list) = status_and_json(
        app.post_raw("/api/data/whatever", r#"{"email": "jon.doe@mail.com"}"#)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["IdClient"], id.as_str());

    let (status, body) = app.customer_by_email("nobody@mail.com").await;
    assert_error(status, &body, 404, "customer_not_found");
    assert_eq!(body["error"], "user not found");

    let (status, body) = status_and_json(app.post_raw("/api/customer/email", r#"{"mail_typo": "x"}"#).await).await;
    assert_error(status, &body, 422, "invalid_fields");
}

#[tokio::test]
async fn unknown_customer_is_user_not_found_whatever_the_id_looks_like() {
    let app = spawn_app().await;
    for id in ["a14e39ce-e29e-11e9-a8cb-08002751d198", "not-a-uuid", "42"] {
        let (status, body) = app.customer_as_list(id).await;
        assert_error(status, &body, 404, "customer_not_found");
        assert_eq!(body["error"], "user not found");
        let (status, body) = app.customer(id).await;
        assert_error(status, &body, 404, "customer_not_found");
    }
}

#[tokio::test]
async fn full_listing_is_in_id_order_and_ids_are_never_reused() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            app.create_customer_ok(&json!({"Nom": format!("N{n}"), "email": format!("n{n}@x.fr")}))
                .await,
        );
    }
    let (status, _) = app.erase_customer(&ids[4]).await;
    assert_eq!(status, 200);
    let next = app.create_customer_ok(&json!({"Nom": "After"})).await;
    let all = app.all_customers().await;
    let seq: Vec<u64> = all.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(
        seq,
        [1, 2, 3, 4, 6],
        "erased customer 5 left the list; its number was not reused"
    );
    assert_eq!(all.last().unwrap()["IdClient"], next.as_str());
}

#[tokio::test]
async fn v1_create_answers_201_with_the_customer() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/v1/customers",
            &json!({"Nom": "Martin", "Prenom": "Léa", "CarteFid": 77}),
        )
        .await;
    let (status, c) = status_and_json(response).await;
    assert_eq!(status, 201);
    assert_eq!(
        (c["Nom"].as_str(), c["Prenom"].as_str(), c["CarteFid"].as_u64()),
        (Some("Martin"), Some("Léa"), Some(77))
    );
    let (status, body) = status_and_json(
        app.post_json("/api/v1/customers", &json!({"Nom": "Other", "CarteFid": 77}))
            .await,
    )
    .await;
    assert_error(status, &body, 409, "card_taken");
    assert_eq!(body["idClient"], c["IdClient"]);
}

#[tokio::test]
async fn patch_changes_given_fields_validates_and_keeps_email_unique() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&jon()).await;
    let other = app
        .create_customer_ok(&json!({"Nom": "Other", "email": "other@mail.com"}))
        .await;

    let (status, c) = app
        .patch_customer(&id, &json!({"Phone": "0102030405", "Age": null, "Email": "Jon@New.fr"}))
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (c["Phone"].as_str(), c["Nom"].as_str()),
        (Some("0102030405"), Some("Doe"))
    );
    assert!(c["Age"].is_null());
    let (status, found) = app.customer_by_email("jon@new.fr").await;
    assert_eq!((status, found["IdClient"].as_str()), (200, Some(id.as_str())));
    let (status, _) = app.customer_by_email("jon.doe@mail.com").await;
    assert_eq!(status, 404, "the old e-mail left the index");

    let (status, body) = app.patch_customer(&id, &json!({"Email": "OTHER@mail.com"})).await;
    assert_error(status, &body, 409, "email_taken");
    assert_eq!(body["idClient"], other.as_str());

    let (status, body) = app
        .patch_customer(&id, &json!({"Age": -1, "Credit": 10, "Nom": ""}))
        .await;
    assert_error(status, &body, 422, "invalid_fields");
    assert_eq!(body["errors"].as_array().unwrap().len(), 3);

    let (_, unchanged) = app.customer(&id).await;
    assert_eq!(unchanged["Email"], "Jon@New.fr", "refused patches wrote nothing");

    let (status, body) = app
        .patch_customer("a14e39ce-e29e-11e9-a8cb-08002751d198", &json!({"Nom": "X"}))
        .await;
    assert_error(status, &body, 404, "customer_not_found");
}

#[tokio::test]
async fn delete_erases_personal_data_but_the_record_answers_by_id() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(&json!({"Nom": "Doe", "Prenom": "Jon", "email": "jon@x.fr", "Credit": 500, "Compte": "BK1", "CarteFid": 12, "Age": 40}))
        .await;
    let (status, erased) = app.erase_customer(&id).await;
    assert_eq!(status, 200);
    for key in ["Nom", "Prenom", "Email", "Phone", "Compte"] {
        assert_eq!(erased[key], "", "{key} blanked");
    }
    assert!(erased["Age"].is_null() && erased["CarteFid"].is_null());
    assert_eq!(
        (erased["Credit"].as_u64(), erased["IdClient"].as_str()),
        (Some(500), Some(id.as_str()))
    );

    let (status, again) = app.customer(&id).await;
    assert_eq!((status, &again), (200, &erased), "still answers by id");
    let (status, _) = app.customer_by_email("jon@x.fr").await;
    assert_eq!(status, 404, "left the e-mail index");
    let (_, page) = app.list_customers("q=doe").await;
    assert_eq!(page["total"], 0, "left the search");
    let (_, page) = app.list_customers("").await;
    assert_eq!(page["total"], 0, "left the list");
    assert!(app.all_customers().await.is_empty());

    // The e-mail and card are free again.
    let (status, _) = app
        .create_customer(&json!({"Nom": "New", "email": "jon@x.fr", "CarteFid": 12}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = app.patch_customer(&id, &json!({"Nom": "Back"})).await;
    assert_error(status, &body, 404, "customer_not_found");
}

#[tokio::test]
async fn search_matches_names_email_phone_card_and_id() {
    let app = spawn_app().await;
    let lea = app
        .create_customer_ok(&json!({"Nom": "Lefèvre", "Prenom": "Léa", "email": "lea.l@shop.fr", "phone": "+33 6 11 22 33 44", "CarteFid": 4242}))
        .await;
    app.create_customer_ok(&json!({"Nom": "Martin", "Prenom": "Paul", "email": "paul@shop.fr", "phone": "0699887766"}))
        .await;
    for (q, expected) in [
        ("lefevre", 1),
        ("LÉA", 1),
        ("le", 1),
        ("lea.l@", 1),
        ("shop", 0),
        ("0611", 1),
        ("06 99 88", 1),
        ("4242", 1),
        ("paul martin", 1),
        ("paul lea", 0),
        ("zzz", 0),
    ] {
        let (status, page) = app.list_customers(&format!("q={}", urlencode(q))).await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], expected, "q={q}: {page}");
        assert_eq!(page["items"].as_array().unwrap().len(), expected as usize);
    }
    let (_, page) = app.list_customers(&format!("q={lea}")).await;
    assert_eq!(page["items"][0]["IdClient"], lea.as_str());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn v1_writes_name_the_keys_they_do_not_know_and_the_older_routes_ignore_them() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(
        app.post_json("/api/v1/customers", &json!({"Nom": "A", "Emial": "a@x.fr"}))
            .await,
    )
    .await;
    assert_error(status, &body, 422, "invalid_fields");
    assert_eq!(
        body["errors"],
        json!([{"field": "Emial", "error": "is not a customer field"}])
    );
    assert_eq!(app.customer_count().await, 0, "nothing was created");

    // The older clients' extra keys are still ignored on the older route.
    let id = app
        .create_customer_ok(&json!({"Nom": "A", "Emial": "a@x.fr", "Paiement": 25}))
        .await;
    let (status, body) = app
        .patch_customer(&id, &json!({"Prenom": "Jo", "Telephone": "0102"}))
        .await;
    assert_error(status, &body, 422, "invalid_fields");
    assert_eq!(body["errors"][0]["field"], "Telephone");
    let (_, customer) = app.customer(&id).await;
    assert_eq!(customer["Prenom"], "", "nothing was changed");
    let (status, _) = app.patch_customer(&id, &json!({"Prenom": "Jo"})).await;
    assert_eq!(status, 200);
}
