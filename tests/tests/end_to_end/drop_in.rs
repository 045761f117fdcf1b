//! The CRM in place of the first implementation, with the other services as they are:
//! the scheduler's `{}` pulls the shops' and the web shop's tickets through the gateway
//! and sends the due payments; the ticket feeds answer the older shape; every fault of
//! a source costs nothing. The services are fakes behind a fake gateway that routes by
//! `Host` ([`crm_tests::upstream`]), answering the payloads those services send.

use std::time::Duration;

use crm_server::config::Clock;
use crm_tests::upstream::{Answer, FakeGateway, PaymentCall, SALES_PATH, SALES_SLASHED};
use crm_tests::{assert_error, spawn_app_with, TestApp};
use serde_json::{json, Value};

/// A server whose gateway is `gateway`, with the other settings adjusted by `configure`.
async fn app_behind(gateway: &FakeGateway, configure: impl FnOnce(&mut crm_server::Config)) -> TestApp {
    let url = gateway.url();
    spawn_app_with(move |config| {
        config.gateway = Some(url);
        config.upstream_timeout = Duration::from_millis(500);
        configure(config);
    })
    .await
}

/// A sale as the shops' service answers it (`api/sales/`), for `client` (an IdClient,
/// `""`, or a card as the till read it).
fn vente(id: u64, client: &str, prix: u64) -> Value {
    let mut sale = json!({
        "id": id, "date": "2019-01-07T09:00:00", "prix": prix, "client": client, "pointsFidelite": 0,
        "modePaiement": "CASH",
        "articles": [{"codeProduit": "X1-0", "familleProduit": "Boissons", "descriptionProduit": "Eau",
            "quantiteMin": 1, "packaging": 6, "prix": prix + 100, "exclusivite": "", "promo": 10,
            "prixApres": prix as f64 / 100.0, "stock": 12, "quantity": 1}]
    });
    if !client.is_empty() {
        sale["promo_client"] = json!(7);
        sale["articles"][0]["promo_client_produit"] = json!(5);
    }
    sale
}

/// A ticket as the web shop answers it (`ecommerce/getTickets`): `client` is an e-mail.
fn web_ticket(id: u64, email: &str, prix: u64) -> Value {
    json!({
        "id": id, "date": "2019-01-07T10:00:00.123Z", "prix": prix, "client": email, "pointsFidelite": 0,
        "modePaiement": "CARD",
        "articles": [{"codeProduit": "X2-1", "prix": prix, "prixApres": prix as f64 - 0.4, "promo": 0,
            "promo_client": 3, "promo_client_produit": 0, "quantity": 1}]
    })
}

async fn credit_of(app: &TestApp, id: &str) -> u64 {
    let (status, customer) = app.customer(id).await;
    assert_eq!(status, 200, "{customer}");
    customer["Credit"].as_u64().unwrap()
}

#[tokio::test]
async fn the_schedulers_empty_post_pulls_the_shops_tickets_once() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |_| {}).await;
    let a = app.create_customer_ok(&json!({"Nom": "Bloggs", "Prenom": "Jo"})).await;
    app.create_v1_ok(&json!({"Nom": "Carded", "CarteFid": 33})).await;
    gateway.set_sales(json!({"tickets": [vente(1, &a, 425), vente(2, "", 300), vente(3, "33", 1000)]}));

    let summary = app.pull_shops().await;
    assert_eq!(summary["source"], "gestion-magasin");
    assert_eq!(
        (&summary["received"], &summary["stored"], &summary["duplicates"]),
        (&json!(3), &json!(3), &json!(0)),
        "{summary}"
    );
    assert_eq!(
        (&summary["anonymous"], &summary["credited_cents"]),
        (&json!(1), &json!(712))
    );
    assert_eq!((&summary["errors"], &summary["unmatched"]), (&json!([]), &json!([])));
    assert_eq!(credit_of(&app, &a).await, 212);
    assert_eq!(app.credit_of("33").await.1["Credit"], 500);
    // The service's 301 to the slashed path was followed, with its Host kept.
    let calls = gateway.calls();
    assert_eq!(
        calls[..2],
        [
            ("gestion-magasin".to_string(), SALES_PATH.to_string()),
            ("gestion-magasin".to_string(), SALES_SLASHED.to_string())
        ]
    );

    // Sources answer every ticket on every call: a second pull credits nothing again,
    // and so does a GET, or an empty body.
    let again = app.pull_shops().await;
    assert_eq!(
        (&again["stored"], &again["duplicates"]),
        (&json!(0), &json!(3)),
        "{again}"
    );
    let (status, by_get) = crm_tests::status_and_json(app.get("/api/credit").await).await;
    assert_eq!((status, &by_get["duplicates"]), (200, &json!(3)));
    let (status, empty) = crm_tests::status_and_json(app.post_raw("/api/credit", "").await).await;
    assert_eq!((status, &empty["duplicates"]), (200, &json!(3)));
    assert_eq!(credit_of(&app, &a).await, 212);

    // Older versions of the service answer a bare list.
    gateway.set_sales(
        json!([{"id": 4, "date": "2019-01-08T09:00:00", "prix": 100, "client": a,
        "pointsFidelite": 0, "modePaiement": "DIFFERED",
        "articles": [{"codeProduit": "Y", "prix": 100, "prixApres": 1.0, "quantity": 1}]}]),
    );
    assert_eq!(app.pull_shops().await["stored"], 1);
    assert_eq!(credit_of(&app, &a).await, 262);
}

#[tokio::test]
async fn the_web_shops_tickets_credit_the_customer_with_that_email() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |_| {}).await;
    let id = app
        .create_customer_ok(&json!({"name": "Jon", "last_name": "Doe", "mail": "jon.doe@mail.com"}))
        .await;
    gateway
        .set_web_shop(json!({"tickets": [web_ticket(1, "Jon.Doe@Mail.com", 800), web_ticket(2, "nobody@x.fr", 90)]}));

    let summary = app.pull_web_shop().await;
    assert_eq!(
        (&summary["source"], &summary["stored"]),
        (&json!("e-commerce"), &json!(2)),
        "{summary}"
    );
    assert_eq!(summary["unmatched"], json!(["e-commerce2"]));
    assert_eq!(credit_of(&app, &id).await, 400);
    // A GET does the same, and credits nothing twice.
    let (status, again) = crm_tests::status_and_json(app.get("/api/credit_ecommerce").await).await;
    assert_eq!((status, &again["duplicates"]), (200, &json!(2)));

    // The unmatched ticket waits for its customer.
    app.create_customer_ok(&json!({"Nom": "Nobody", "email": "nobody@x.fr"}))
        .await;
    let found = app.customer_by_email("nobody@x.fr").await.1;
    assert_eq!(found["Credit"], 45, "{found}");
}

#[tokio::test]
async fn the_ticket_feeds_answer_the_older_shape_with_the_crms_own_numbers() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |_| {}).await;
    let a = app.create_customer_ok(&json!({"Nom": "A", "email": "a@x.fr"})).await;
    // The shops and the web shop number their tickets alike: 1 and 2 on both sides.
    gateway.set_sales(json!({"tickets": [vente(1, &a, 425), vente(2, "", 300)]}));
    gateway.set_web_shop(json!({"tickets": [web_ticket(1, "a@x.fr", 800), web_ticket(2, "", 90)]}));
    app.pull_shops().await;
    app.pull_web_shop().await;

    for feed in [app.get_tickets(None).await, app.get_tickets(Some("promo")).await] {
        assert_eq!(feed.len(), 4, "{feed:?}");
        let ids: Vec<u64> = feed.iter().map(|t| t["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        let first = &feed[0];
        assert_eq!(
            (&first["uid"], &first["date"], &first["Promo_client"], &first["client"]),
            (&json!("magasin1"), &json!("2019-01-07"), &json!(7), &json!(a))
        );
        assert_eq!(
            first["articles"][0],
            json!({"id": 1, "codeProduit": "X1-0", "prixAvant": 525, "prixApres": 425, "promo": 10,
                "promo_client_produit": 5, "quantity": 1, "ticket_id": 1})
        );
        // No promotion given: 0, never null; the web shop's comes from its first article.
        assert_eq!(
            (&feed[1]["Promo_client"], &feed[2]["Promo_client"]),
            (&json!(0), &json!(3))
        );
        assert_eq!(
            (&feed[2]["uid"], &feed[2]["date"]),
            (&json!("e-commerce1"), &json!("2019-01-07"))
        );
        // Every number is an integer; article ids are unique across tickets.
        assert_eq!(feed[2]["articles"][0]["prixApres"], 800);
        let article_ids: Vec<u64> = feed
            .iter()
            .flat_map(|t| {
                t["articles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["id"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(article_ids, [1, 2, 3, 4]);
    }
    // The consumer's cursor moved: nothing new for promotion, everything for BI.
    assert!(app.get_tickets(Some("promo")).await.is_empty());
    assert_eq!(app.get_tickets(Some("bi")).await.len(), 4);

    // /api/v1 keeps the full form: the source's number and the full date-time.
    let (_, page) = app.tickets("limit=10").await;
    assert_eq!(page["items"][2]["id"], 1);
    assert_eq!(page["items"][2]["date"], "2019-01-07T10:00:00.123Z");
}

#[tokio::test]
async fn an_unreadable_date_is_null_and_the_ticket_still_counts() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |_| {}).await;
    let a = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let mut sale = vente(1, &a, 200);
    sale["date"] = json!("07/01/2019 9h");
    gateway.set_sales(json!({"tickets": [sale]}));
    assert_eq!(app.pull_shops().await["stored"], 1);
    assert_eq!(credit_of(&app, &a).await, 100);
    assert_eq!(app.get_tickets(Some("bi")).await[0]["date"], Value::Null);
    let (status, page) = app.customer_page(&a).await;
    assert_eq!(status, 200);
    assert!(page.contains("magasin1"), "{page}");
}

#[tokio::test]
async fn a_sources_faults_cost_nothing_and_the_next_pull_takes_the_tickets() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |_| {}).await;
    let a = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let good = json!({"tickets": [vente(1, &a, 400)]});
    let html = |status: u16| Answer::Raw {
        status,
        content_type: "text/html",
        body: "<html><body>Server Error</body></html>".into(),
    };
    let faults = [
        ("down", Answer::down()),
        ("HTML with 200", html(200)),
        ("an error page", html(500)),
        (
            "cut-off JSON",
            Answer::Raw {
                status: 200,
                content_type: "application/json",
                body: r#"{"tickets": [{"id": 1, "date": "2019-01"#.into(),
            },
        ),
        ("not a list", Answer::Json(json!({"status": "maintenance"}))),
        (
            "slow",
            Answer::Slow(Duration::from_secs(3), Box::new(Answer::Json(good.clone()))),
        ),
        (
            "redirect loop",
            Answer::Redirect {
                status: 302,
                location: SALES_SLASHED.into(),
            },
        ),
    ];
    for (fault, answer) in faults {
        gateway.set("gestion-magasin", SALES_SLASHED, answer);
        let summary = app.pull_shops().await;
        assert_eq!(summary["stored"], 0, "{fault}: {summary}");
        assert!(summary["error_count"].as_u64().unwrap() >= 1, "{fault}: {summary}");
        assert!(summary["message"].as_str().is_some(), "{fault}: {summary}");
        assert_eq!(credit_of(&app, &a).await, 0, "{fault}");
    }

    // Some malformed tickets: the valid ones go in, the others are reported.
    gateway
        .set_sales(json!({"tickets": [vente(1, &a, 400), {"id": 2, "prix": "beaucoup"}, 7, {"date": "2019-01-07"}]}));
    let summary = app.pull_shops().await;
    assert_eq!(
        (&summary["received"], &summary["stored"]),
        (&json!(4), &json!(1)),
        "{summary}"
    );
    let reported: Vec<(u64, String)> = summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        reported,
        [
            (1, "prix".into()),
            (2, "ticket".into()),
            (3, "id".into()),
            (3, "prix".into())
        ]
    );
    assert_eq!(credit_of(&app, &a).await, 200);

    // Fixed at the source: the next pull takes them, crediting the first one no more.
    gateway.set_sales(json!({"tickets": [vente(1, &a, 400), vente(2, &a, 100)]}));
    let summary = app.pull_shops().await;
    assert_eq!(
        (&summary["stored"], &summary["duplicates"]),
        (&json!(1), &json!(1)),
        "{summary}"
    );
    assert_eq!(credit_of(&app, &a).await, 250);
}

#[tokio::test]
async fn a_gateway_that_refuses_connections_is_reported() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_app_with(|config| {
        config.gateway = Some(reqwest::Url::parse(&format!("http://{closed}/")).unwrap());
    })
    .await;
    for summary in [app.pull_shops().await, app.pull_web_shop().await] {
        assert_eq!(summary["configured"], true);
        assert!(
            summary["message"].as_str().unwrap().contains("cannot be reached"),
            "{summary}"
        );
    }
    // The payment service cannot have been reached: not sent, not refused.
    let id = customer_with_payment(&app, "BKN", 100, "2019-01-05").await;
    let run = app.run_payments().await;
    assert_eq!(
        (&run["due"], &run["sent"], &run["unreachable"]),
        (&json!(1), &json!(0), &json!(1)),
        "{run}"
    );
    let (_, customer) = app.customer(&id).await;
    assert_eq!((&customer["NbRefus"], &customer["Montant"]), (&json!(0), &json!(100)));
    let payment = &payments_of(&app, &id).await[0];
    assert!(
        payment.get("sent_at").is_none(),
        "not sent, so not marked sent: {payment}"
    );
}

#[tokio::test]
async fn without_a_gateway_the_scheduler_calls_say_nothing_is_configured() {
    let app = crm_tests::spawn_app().await;
    for summary in [
        app.pull_shops().await,
        app.pull_web_shop().await,
        app.run_payments().await,
    ] {
        assert_eq!(summary["configured"], false, "{summary}");
        assert!(summary["message"].as_str().unwrap().contains("--gateway"), "{summary}");
    }
}

/// A customer with account `compte` and one deferred payment of `montant` due on `date`.
async fn customer_with_payment(app: &TestApp, compte: &str, montant: u64, date: &str) -> String {
    let id = app.create_customer_ok(&json!({"Nom": "Payer", "Compte": compte})).await;
    let (status, body) = app
        .allow_credit(&json!({"idClient": id, "Montant": montant, "Date": date}))
        .await;
    assert_eq!((status, &body["Allowed"]), (200, &json!(true)), "{body}");
    id
}

async fn payments_of(app: &TestApp, id: &str) -> Vec<Value> {
    app.all_pages(&format!("/api/v1/customers/{id}/payments"), 50).await
}

#[tokio::test]
async fn due_payments_are_sent_once_by_the_schedulers_date_and_settled() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |c| c.clock = Clock::Scheduler).await;
    // The scheduler's clock says 07/01/2019: the first is due, the second not yet.
    let id = customer_with_payment(&app, "BKN1CST53", 1330, "2019-01-05").await;
    app.allow_credit(&json!({"idClient": id, "Montant": 500, "Date": "2019-02-01"}))
        .await;

    let run = app.run_payments().await;
    assert_eq!(
        (&run["clock"], &run["date"], &run["due"], &run["sent"], &run["paid"]),
        (
            &json!("scheduler"),
            &json!("2019-01-07"),
            &json!(1),
            &json!(1),
            &json!(1)
        ),
        "{run}"
    );
    assert_eq!(
        gateway.payment_calls(),
        [PaymentCall {
            client_id: id.clone(),
            card: "BKN1CST53".into(),
            amount: "1330".into()
        }]
    );
    let payments = payments_of(&app, &id).await;
    assert_eq!(
        (&payments[0]["status"], &payments[1]["status"]),
        (&json!("paid"), &json!("pending"))
    );
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (&customer["Montant"], &customer["Date_paiement"]),
        (&json!(500), &json!("2019-02-01"))
    );

    // Nothing is due any more: the next run sends nothing.
    let run = app.run_payments().await;
    assert_eq!((&run["due"], &run["sent"]), (&json!(0), &json!(0)), "{run}");
    assert_eq!(gateway.payment_calls().len(), 1);
}

#[tokio::test]
async fn a_definite_error_is_a_refusal_and_moves_the_payment_a_day_later() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |c| c.clock = Clock::Scheduler).await;
    let id = customer_with_payment(&app, "BKN1", 1000, "2019-01-07").await;
    gateway.set_payment_answer(Answer::Json(
        json!({"status": "ERROR", "message": "insufficient funds"}),
    ));

    let run = app.run_payments().await;
    assert_eq!(
        (&run["sent"], &run["refused"], &run["paid"]),
        (&json!(1), &json!(1), &json!(0)),
        "{run}"
    );
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (&customer["NbRefus"], &customer["Date_paiement"]),
        (&json!(1), &json!("2019-01-08"))
    );
    let payment = &payments_of(&app, &id).await[0];
    assert_eq!(
        (&payment["status"], &payment["attempts"]),
        (&json!("pending"), &json!(1))
    );
    // The refusal limit now refuses new credit.
    let (_, allowed) = app
        .allow_credit(&json!({"idClient": id, "Montant": 10, "Date": "2019-03-01"}))
        .await;
    assert_eq!(allowed["Allowed"], false);
}

#[tokio::test]
async fn an_uncertain_call_is_neither_paid_nor_refused_and_the_same_payment_is_sent_again() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |c| c.clock = Clock::Scheduler).await;
    let id = customer_with_payment(&app, "BKN2", 2500, "2019-01-06").await;
    let ok = Answer::Json(json!({"status": "OK", "message": "paid"}));
    // A payment service that times out after taking the call, then one that answers
    // something unreadable, then one that says OK.
    gateway.queue_payment_answers([
        Answer::Slow(Duration::from_secs(3), Box::new(ok.clone())),
        Answer::Raw {
            status: 502,
            content_type: "text/html",
            body: "<h1>Bad gateway</h1>".into(),
        },
    ]);
    for _ in 0..2 {
        let run = app.run_payments().await;
        assert_eq!(
            (&run["sent"], &run["uncertain"], &run["refused"]),
            (&json!(1), &json!(1), &json!(0)),
            "{run}"
        );
        let payment = &payments_of(&app, &id).await[0];
        assert_eq!(
            (&payment["status"], &payment["attempts"]),
            (&json!("pending"), &json!(0)),
            "{payment}"
        );
        assert!(payment["sent_at"].is_string(), "marked sent before the call: {payment}");
        let (_, customer) = app.customer(&id).await;
        assert_eq!((&customer["NbRefus"], &customer["Montant"]), (&json!(0), &json!(2500)));
    }
    let run = app.run_payments().await;
    assert_eq!(run["paid"], 1, "{run}");
    // The same payment each time: same customer, same amount, no second payment.
    let calls = gateway.payment_calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.client_id == id && c.amount == "2500"));
    let payments = payments_of(&app, &id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "paid");
    assert!(payments[0].get("sent_at").is_none(), "{}", payments[0]);
}

#[tokio::test]
async fn two_payment_runs_at_once_send_each_payment_once() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |c| c.clock = Clock::Scheduler).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(customer_with_payment(&app, &format!("C{n}"), 100 + n, "2019-01-01").await);
    }
    gateway.set_payment_answer(Answer::Slow(
        Duration::from_millis(50),
        Box::new(Answer::Json(json!({"status": "OK"}))),
    ));
    let (first, second) = tokio::join!(app.run_payments(), app.run_payments());
    assert_eq!(
        first["paid"].as_u64().unwrap() + second["paid"].as_u64().unwrap(),
        6,
        "{first} {second}"
    );
    let mut paid: Vec<String> = gateway.payment_calls().into_iter().map(|c| c.client_id).collect();
    paid.sort();
    ids.sort();
    assert_eq!(paid, ids);
}

#[tokio::test]
async fn the_system_clock_is_the_default() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |_| {}).await;
    customer_with_payment(&app, "X", 100, "2019-01-05").await;
    let today = chrono::Utc::now().date_naive().to_string();
    let run = app.run_payments().await;
    assert_eq!(
        (&run["clock"], &run["date"], &run["paid"]),
        (&json!("system"), &json!(today), &json!(1)),
        "{run}"
    );
    // Without the scheduler's clock no date is guessed: nothing is sent.
    gateway.set("scheduler", "/clock/time", Answer::down());
    let app = app_behind(&gateway, |c| c.clock = Clock::Scheduler).await;
    customer_with_payment(&app, "Y", 100, "2019-01-05").await;
    let run = app.run_payments().await;
    assert_eq!(run["sent"], 0, "{run}");
    assert!(run["message"].as_str().unwrap().contains("no date"), "{run}");
}

#[tokio::test]
async fn the_servers_own_schedule_pulls_and_pays_without_a_scheduler() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |c| c.pull_every = Some(Duration::from_millis(200))).await;
    let a = app.create_customer_ok(&json!({"Nom": "A", "email": "a@x.fr"})).await;
    app.allow_credit(&json!({"idClient": a, "Montant": 100, "Date": "2019-01-05"}))
        .await;
    gateway.set_sales(json!({"tickets": [vente(1, &a, 400)]}));
    gateway.set_web_shop(json!({"tickets": [web_ticket(1, "a@x.fr", 200)]}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, customer) = app.customer(&a).await;
        if customer["Credit"] == 300 && customer["Montant"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not pulled and paid: {customer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(credit_of(&app, &a).await, 300, "each ticket credited once");
    assert_eq!(gateway.payment_calls().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn anonymous_sales_in_a_credit_batch_are_skipped_and_counted() {
    let app = crm_tests::spawn_app().await;
    app.create_v1_ok(&json!({"Nom": "A", "CarteFid": 33})).await;
    let (status, body) = app
        .credit(
            &json!({"Tickets": [{"carteFid": null, "Montant": 80}, {"carteFid": 33, "Montant": 26},
            {"carteFid": "", "Montant": 10}, {"Montant": 4}, {"carteFid": 99, "Montant": 2}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["credited"], json!([{"carteFid": 33, "Credit": 13}]));
    assert_eq!(body["anonymous"], 3);
    assert_eq!(
        body["errors"],
        json!([{"index": 4, "carteFid": 99, "error": "unknown card"}])
    );
    // An anonymous item is still checked.
    let (status, body) = app
        .credit(&json!({"Tickets": [{"carteFid": null, "Montant": -1}, {"carteFid": 33, "Montant": 26}]}))
        .await;
    assert_error(status, &body, 422, "invalid_fields");
    assert_eq!(app.credit_of("33").await.1["Credit"], 13);
}

/// 2^53 - 1 cents: the largest amount stored.
const MAX_CENTS: u64 = (1 << 53) - 1;

#[tokio::test]
async fn no_write_takes_an_amount_past_its_bound() {
    let app = crm_tests::spawn_app().await;
    let rich = app
        .create_v1_ok(&json!({"Nom": "Rich", "CarteFid": 1, "Credit": MAX_CENTS - 10}))
        .await;
    let id = rich["IdClient"].as_str().unwrap().to_string();

    // Credits: the batch that would pass the bound is refused whole.
    app.create_v1_ok(&json!({"Nom": "Other", "CarteFid": 2})).await;
    let (status, body) = app
        .credit(&json!({"Tickets": [{"carteFid": 2, "Montant": 10}, {"carteFid": 1, "Montant": 100}]}))
        .await;
    assert_error(status, &body, 422, "amount_out_of_range");
    assert_eq!(body["errors"][0]["field"], "Tickets[1].Montant", "{body}");
    assert_eq!(credit_of(&app, &id).await, MAX_CENTS - 10);
    assert_eq!(
        app.credit_of("2").await.1["Credit"],
        0,
        "nothing of the batch was written"
    );
    let (status, body) = app.credit(&json!({"Tickets": [{"carteFid": 1, "Montant": 20}]})).await;
    assert_eq!(
        (status, &body["credited"][0]["Credit"]),
        (200, &json!(MAX_CENTS)),
        "{body}"
    );

    // Tickets: same rule, the batch refused whole.
    let (status, body) = app
        .post_tickets(&json!({"origin": "magasin", "tickets": [
            {"id": 1, "date": "2020-01-01", "prix": 10, "client": "", "CarteFid": 2},
            {"id": 2, "date": "2020-01-01", "prix": 10, "client": id}]}))
        .await;
    assert_error(status, &body, 422, "amount_out_of_range");
    assert_eq!(body["errors"][0]["field"], "tickets[1]", "{body}");
    let (_, page) = app.tickets("").await;
    assert_eq!(page["total"], 0);

    // Deferred payments: the customer's Montant is bounded too.
    let (status, body) = app
        .allow_credit(&json!({"idClient": id, "Montant": MAX_CENTS, "Date": "2020-01-01"}))
        .await;
    assert_eq!((status, &body["Allowed"]), (200, &json!(true)), "{body}");
    let (status, body) = app
        .allow_credit(&json!({"idClient": id, "Montant": 1, "Date": "2020-01-02"}))
        .await;
    assert_error(status, &body, 422, "amount_out_of_range");
    assert_eq!(body["Allowed"], false);
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (&customer["Montant"], &customer["Credit"]),
        (&json!(MAX_CENTS), &json!(MAX_CENTS))
    );
}

#[tokio::test]
async fn a_pulled_ticket_past_the_bound_is_left_out_alone() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |_| {}).await;
    let rich = app.create_v1_ok(&json!({"Nom": "Rich", "Credit": MAX_CENTS})).await;
    let rich = rich["IdClient"].as_str().unwrap().to_string();
    let poor = app.create_customer_ok(&json!({"Nom": "Poor"})).await;
    gateway.set_sales(json!({"tickets": [vente(1, &poor, 100), vente(2, &rich, 100), vente(3, &poor, 50)]}));
    let summary = app.pull_shops().await;
    assert_eq!(summary["stored"], 2, "{summary}");
    assert_eq!(summary["errors"][0]["uid"], "magasin2", "{summary}");
    assert_eq!(credit_of(&app, &poor).await, 75);
    assert_eq!(credit_of(&app, &rich).await, MAX_CENTS);
}

#[tokio::test]
async fn two_pulls_at_once_credit_each_ticket_once() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |_| {}).await;
    let a = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let sales: Vec<Value> = (1..=300).map(|n| vente(n, &a, 10)).collect();
    gateway.set_sales(json!({ "tickets": sales }));
    let (first, second, third) = tokio::join!(app.pull_shops(), app.pull_shops(), app.pull_shops());
    let stored: u64 = [&first, &second, &third]
        .iter()
        .map(|s| s["stored"].as_u64().unwrap())
        .sum();
    let duplicates: u64 = [&first, &second, &third]
        .iter()
        .map(|s| s["duplicates"].as_u64().unwrap())
        .sum();
    assert_eq!((stored, duplicates), (300, 600), "{first} {second} {third}");
    assert_eq!(credit_of(&app, &a).await, 1500);
}

#[tokio::test]
async fn two_runs_at_once_refuse_an_overdue_payment_once() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |c| c.clock = Clock::Scheduler).await;
    // Due long before the clock's 07/01/2019: a refusal moves it a day later, still due.
    let id = customer_with_payment(&app, "OLD", 700, "2018-12-01").await;
    gateway.set_payment_answer(Answer::Slow(
        Duration::from_millis(100),
        Box::new(Answer::Json(json!({"status": "ERROR", "message": "no"}))),
    ));
    let (first, second) = tokio::join!(app.run_payments(), app.run_payments());
    assert_eq!(
        first["refused"].as_u64().unwrap() + second["refused"].as_u64().unwrap(),
        1,
        "{first} {second}"
    );
    assert_eq!(gateway.payment_calls().len(), 1);
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (&customer["NbRefus"], &customer["Date_paiement"]),
        (&json!(1), &json!("2018-12-02"))
    );
}

#[tokio::test]
async fn an_import_keeps_a_payment_awaiting_the_services_answer() {
    let gateway = FakeGateway::start().await;
    let app = app_behind(&gateway, |c| c.clock = Clock::Scheduler).await;
    let id = customer_with_payment(&app, "BKN3", 900, "2019-01-02").await;
    gateway.set_payment_answer(Answer::Slow(
        Duration::from_secs(3),
        Box::new(Answer::Json(json!({"status": "OK"}))),
    ));
    let run = app.run_payments().await;
    assert_eq!(run["uncertain"], 1, "{run}");
    // The import schedules a new payment for this customer: the one in flight stays.
    let csv = format!("IdClient,Nom,Date_paiement,Montant\n{id},Payer,2019-03-01,400\n");
    let (status, answer) = app.import("", Some("text/csv"), csv).await;
    assert_eq!(status, 200, "{answer}");
    let statuses: Vec<Value> = payments_of(&app, &id)
        .await
        .iter()
        .map(|p| p["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("pending"), json!("pending")]);
    let (_, customer) = app.customer(&id).await;
    assert_eq!(customer["Montant"], 1300, "{customer}");
    // Its answer still finds it.
    gateway.set_payment_answer(Answer::Json(json!({"status": "OK"})));
    let run = app.run_payments().await;
    assert_eq!(run["paid"], 1, "{run}");
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (&customer["Montant"], &customer["Date_paiement"]),
        (&json!(400), &json!("2019-03-01"))
    );
}
