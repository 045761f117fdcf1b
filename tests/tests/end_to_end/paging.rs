//! Paging through a few thousand customers in every sort order: each page follows the
//! last by key range, so nothing repeats and nothing is skipped.

use std::cmp::Ordering;

use crm_tests::{spawn_app, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};

const CUSTOMERS: usize = 2_000;
const NAMES: [&str; 7] = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit", "Élodie"];

async fn seed(app: &TestApp) {
    futures::stream::iter(0..CUSTOMERS)
        .map(|n| async move {
            // Few distinct names and credits: ties must be broken by id.
            let body = json!({
                "Nom": format!("{} {}", NAMES[n % NAMES.len()], n % 13),
                "Prenom": "Client",
                "email": format!("client{n}@example.fr"),
                "Credit": (n % 17) * 100,
            });
            app.create_customer_ok(&body).await
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

async fn walk(app: &TestApp, query: &str, limit: usize) -> (Vec<Value>, u64) {
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut total = None;
    loop {
        let mut q = format!("limit={limit}&{query}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.list_customers(&q).await;
        assert_eq!(status, 200, "{q}: {page}");
        let page_total = page["total"].as_u64().unwrap();
        assert_eq!(
            *total.get_or_insert(page_total),
            page_total,
            "total is stable while paging"
        );
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        seen.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), limit, "only the last page is short");
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    (seen, total.unwrap_or(0))
}

fn key_order(a: &Value, b: &Value, key: &str) -> Ordering {
    let id = |v: &Value| v["id"].as_u64().unwrap();
    let primary = match key {
        "id" => Ordering::Equal,
        "Nom" => fold(a["Nom"].as_str().unwrap()).cmp(&fold(b["Nom"].as_str().unwrap())),
        other => a[other].as_u64().unwrap().cmp(&b[other].as_u64().unwrap()),
    };
    primary.then(id(a).cmp(&id(b)))
}

/// The ids of `customers` in the list order `sort` (`Nom`, `-Credit`, ...).
fn ids_in_order<'a>(customers: impl IntoIterator<Item = &'a Value>, sort: &str) -> Vec<u64> {
    let key = sort.trim_start_matches('-');
    let mut sorted: Vec<&Value> = customers.into_iter().collect();
    sorted.sort_by(|a, b| key_order(a, b, key));
    if sort.starts_with('-') {
        sorted.reverse();
    }
    ids(sorted)
}

fn ids<'a>(customers: impl IntoIterator<Item = &'a Value>) -> Vec<u64> {
    customers.into_iter().map(|c| c["id"].as_u64().unwrap()).collect()
}

fn fold(name: &str) -> String {
    name.to_lowercase().replace('é', "e")
}

#[tokio::test]
async fn every_sort_order_pages_without_duplicates_or_gaps() {
    let app = spawn_app().await;
    seed(&app).await;
    let all = app.all_customers().await;
    assert_eq!(all.len(), CUSTOMERS);

    for sort in [
        "id",
        "-id",
        "Nom",
        "-Nom",
        "Credit",
        "-Credit",
        "PanierMoyen",
        "-PanierMoyen",
    ] {
        let (seen, total) = walk(&app, &format!("sort={sort}"), 97).await;
        assert_eq!(total as usize, CUSTOMERS, "{sort}");
        assert_eq!(ids(&seen), ids_in_order(&all, sort), "sort {sort}");
    }
}

#[tokio::test]
async fn searches_page_in_every_sort_order_too() {
    let app = spawn_app().await;
    seed(&app).await;
    let all = app.all_customers().await;
    let martins: Vec<&Value> = all
        .iter()
        .filter(|c| c["Nom"].as_str().unwrap().starts_with("Martin"))
        .collect();
    for sort in ["id", "-id", "Nom", "-Credit"] {
        let (seen, total) = walk(&app, &format!("q=martin&sort={sort}"), 50).await;
        assert_eq!(total as usize, martins.len(), "{sort}");
        let mut ids: Vec<u64> = seen.iter().map(|c| c["id"].as_u64().unwrap()).collect();
        let in_order = ids.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), martins.len(), "no duplicates for {sort}");
        assert!(seen.iter().all(|c| c["Nom"].as_str().unwrap().starts_with("Martin")));
        if sort == "-id" {
            assert!(in_order.windows(2).all(|w| w[0] > w[1]));
        }
    }
    // Two terms: every term must match.
    let (seen, total) = walk(&app, "q=martin+3", 1000).await;
    assert!(total > 0 && seen.iter().all(|c| c["Nom"].as_str().unwrap().starts_with("Martin 3")));
}

/// More matches than a store sorts in memory (2,000 on sled): in an order other than
/// the id's the page comes from walking the sort's index, and must be the same order.
/// Two terms of many matches each are intersected through the index; a term after
/// one of few matches (at most 1,000 on sled) is checked on the records: both give
/// exactly the customers every term matches.
#[tokio::test]
async fn a_search_with_thousands_of_matches_pages_in_every_order() {
    const MATCHES: usize = 2_600;
    let app = spawn_app().await;
    // Customers that match nothing come first, so that the matches' ids run past
    // 4,096: on sled, a search token's ids are packed in blocks of 4,096 consecutive
    // ids, and the matches then span two blocks.
    let others = (0..2_000).map(|n| json!({"Nom": "Autre", "Prenom": "Client", "Email": format!("o{n}@example.fr")}));
    let rows: Vec<Value> = others
        .chain((0..MATCHES).map(|n| {
            json!({
                "Nom": format!("Garcia {}", n % 13),
                "Prenom": if n % 4 == 0 { "Nicolas" } else { "Marie" },
                "Email": format!("g{n}@example.fr"),
                "Credit": (n % 17) * 100,
            })
        }))
        .chain([json!({"Nom": "Other", "Prenom": "Nicolas", "Email": "other@example.fr"})])
        .collect();
    let (status, report) = app
        .import("", Some("application/json"), Value::Array(rows).to_string())
        .await;
    assert_eq!(
        (status, report["created"].as_u64()),
        (200, Some(MATCHES as u64 + 2_001)),
        "{report}"
    );
    let all = app.all_customers().await;
    let queries = [
        ("garcia", None, MATCHES),
        ("garcia+marie", Some("Marie"), MATCHES * 3 / 4),
        ("garcia+nicolas", Some("Nicolas"), MATCHES / 4),
    ];
    for (q, prenom, expected_count) in queries {
        let matching: Vec<&Value> = all
            .iter()
            .filter(|c| c["Nom"].as_str().unwrap().starts_with("Garcia") && prenom.is_none_or(|p| c["Prenom"] == p))
            .collect();
        assert_eq!(matching.len(), expected_count);
        for sort in ["id", "-id", "Nom", "-Nom", "Credit", "-PanierMoyen"] {
            let (seen, total) = walk(&app, &format!("q={q}&sort={sort}"), 97).await;
            assert_eq!(total as usize, expected_count, "q={q} sort={sort}");
            assert_eq!(
                ids(&seen),
                ids_in_order(matching.iter().copied(), sort),
                "q={q} sort={sort}"
            );
        }
    }
}
