//! Data directories written by earlier versions of the embedded store open, and answer
//! as they did.

use crm_tests::{sled_only, spawn_app, spawn_app_on, TestApp};
use serde_json::json;

/// The prefix of the search index's posting blocks, and that of earlier versions' one
/// key per customer and token (crm-server `store::sled::postings`).
const POSTING_BLOCKS: u8 = b't';
const LEGACY_SEARCH: u8 = b's';

/// Opens a stopped server's directory, waiting a little for the server to let go of it
/// (its last connection tasks may still be ending).
fn open(dir: &std::path::Path) -> sled::Db {
    for _ in 0..100 {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    sled::open(dir).expect("open the data directory")
}

/// Rewrites the search index of a stopped server's directory as versions before the
/// posting blocks wrote it: `s`, the token, a NUL, the customer id; no value.
fn rewrite_search_index_as_legacy(dir: &std::path::Path) -> usize {
    let db = open(dir);
    let index = db.open_tree("index").expect("index tree");
    let mut legacy_keys = 0;
    for entry in index.scan_prefix([POSTING_BLOCKS]) {
        let (key, value) = entry.expect("read a block");
        let block = u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap());
        let token = &key[1..key.len() - 9];
        for offset in value.chunks_exact(2) {
            let id = (block << 12) | u64::from(u16::from_be_bytes([offset[0], offset[1]]));
            index
                .insert([&[LEGACY_SEARCH], token, &[0], &id.to_be_bytes()].concat(), &[])
                .unwrap();
            legacy_keys += 1;
        }
        index.remove(key).unwrap();
    }
    db.flush().unwrap();
    legacy_keys
}

fn legacy_keys_left(dir: &std::path::Path) -> usize {
    let db = open(dir);
    db.open_tree("index").unwrap().scan_prefix([LEGACY_SEARCH]).count()
}

async fn ids_found(app: &TestApp, q: &str) -> (u64, Vec<u64>) {
    let (status, page) = app.list_customers(&format!("q={q}&limit=100")).await;
    assert_eq!(status, 200, "{q}: {page}");
    let ids = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    (page["total"].as_u64().unwrap(), ids)
}

const QUERIES: [&str; 7] = [
    "martin",
    "jean",
    "mar",
    "jean+martin",
    "0612",
    "camille.dubois",
    "nobody",
];

#[tokio::test]
async fn a_search_index_of_one_key_per_token_is_rebuilt_once_and_answers_the_same() {
    if sled_only("the layout of the embedded store's data directory") {
        return;
    }
    let app = spawn_app().await;
    let people = [
        ("Martin", "Jean", "jean.martin@free.fr", "06 12 34 56 78"),
        ("Martin", "Marie", "marie.martin@free.fr", "+33 6 98 76 54 32"),
        ("Marchand", "Jean", "jean.marchand@free.fr", "0612000000"),
        ("Dubois", "Camille", "camille.dubois@free.fr", "01 45 00 00 00"),
        ("Martin-Dubois", "Jeanne", "jeanne@free.fr", "01 45 00 00 01"),
    ];
    for (nom, prenom, email, phone) in people {
        app.create_customer_ok(&json!({"Nom": nom, "Prenom": prenom, "Email": email, "Phone": phone}))
            .await;
    }
    let erased = app
        .create_customer_ok(&json!({"Nom": "Martin", "Prenom": "Luc", "Email": "luc@free.fr"}))
        .await;
    assert_eq!(app.erase_customer(&erased).await.0, 200);
    let mut before = Vec::new();
    for q in QUERIES {
        before.push(ids_found(&app, q).await);
    }
    assert_eq!(before[0].0, 3, "the Martins, not the erased one: {before:?}");

    let dir = app.stop_keeping_data().await;
    assert!(rewrite_search_index_as_legacy(dir.path()) > 20);
    let app = spawn_app_on(dir).await;
    for (q, expected) in QUERIES.iter().zip(&before) {
        assert_eq!(&ids_found(&app, q).await, expected, "q={q}");
    }
    // Writes keep the rebuilt index: a new Martin is found, a renamed one no more.
    let new = app
        .create_customer_ok(&json!({"Nom": "Martin", "Prenom": "Paul", "Email": "paul@free.fr"}))
        .await;
    let all = app.all_customers().await;
    let id_of = |id_client: &str| {
        all.iter()
            .find(|c| c["IdClient"] == id_client)
            .and_then(|c| c["id"].as_u64())
            .expect("listed")
    };
    let (_, martins) = ids_found(&app, "martin").await;
    assert_eq!(martins.len(), 4);
    assert_eq!(martins.last(), Some(&id_of(&new)));
    let renamed = &all[0];
    let id_client = renamed["IdClient"].as_str().unwrap().to_string();
    let (status, body) = app.patch_customer(&id_client, &json!({"Nom": "Petit"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids_found(&app, "martin").await.0, 3);
    assert_eq!(ids_found(&app, "petit").await.1, vec![id_of(&id_client)]);

    // The rebuild is done once: no key of the old layout is left for the next start.
    let dir = app.stop_keeping_data().await;
    assert_eq!(legacy_keys_left(dir.path()), 0);
    let app = spawn_app_on(dir).await;
    assert_eq!(ids_found(&app, "martin").await.0, 3);
    assert_eq!(ids_found(&app, "paul").await.1, vec![id_of(&new)]);
}
