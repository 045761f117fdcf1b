//! Durability: every acknowledged write survives a SIGKILL right after its answer, and
//! is reachable again through each index.

use crm_tests::{status_and_json, ServerProcess};
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_crm-server-under-test"));
    let server = ServerProcess::start(binary, data.path());
    let client = reqwest::Client::new();
    let base = server.address.clone();

    // Concurrent writers, so that flushes are shared; each answer is an acknowledgement.
    let acknowledged: Vec<(usize, String)> = futures::stream::iter(0..200usize)
        .map(|n| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let body = json!({"Nom": format!("Durable{n}"), "email": format!("d{n}@x.fr"), "CarteFid": 1000 + n, "Credit": n});
                let response = client.post(format!("{base}/api/create_customer")).json(&body).send().await.unwrap();
                let (status, answer) = status_and_json(response).await;
                assert_eq!(status, 200, "{answer}");
                (n, answer["idClient"].as_str().unwrap().to_string())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let (erased_n, erased_id) = acknowledged[0].clone();
    let response = client
        .delete(format!("{base}/api/v1/customers/{erased_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (patched_n, patched_id) = acknowledged[1].clone();
    let response = client
        .patch(format!("{base}/api/v1/customers/{patched_id}"))
        .json(&json!({"Email": "patched@x.fr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    server.kill();
    let server = ServerProcess::start(binary, data.path());
    let base = server.address.clone();

    for (n, id) in &acknowledged {
        let (status, list) = status_and_json(client.get(format!("{base}/api/data/{id}")).send().await.unwrap()).await;
        assert_eq!(status, 200, "customer {n} lost");
        let c = &list[0];
        if *n == erased_n {
            assert_eq!(c["Nom"], "", "the erasure survived");
            continue;
        }
        assert_eq!(c["Credit"], *n as u64);
        let email = if *n == patched_n {
            "patched@x.fr".to_string()
        } else {
            format!("d{n}@x.fr")
        };
        let (status, by_email) = status_and_json(
            client
                .post(format!("{base}/api/customer/email"))
                .json(&json!({"email": email}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, by_email["IdClient"].as_str()),
            (200, Some(id.as_str())),
            "e-mail index of {n}"
        );
        let (status, page) = status_and_json(
            client
                .get(format!("{base}/api/v1/customers?q={}", 1000 + n))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, page["items"][0]["IdClient"].as_str()),
            (200, Some(id.as_str())),
            "card search of {n}"
        );
    }
    let (_, page) = status_and_json(
        client
            .get(format!("{base}/api/v1/customers?limit=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["total"], 199, "the live counter survived too");
    let (status, _) = status_and_json(
        client
            .post(format!("{base}/api/customer/email"))
            .json(&json!({"email": format!("d{erased_n}@x.fr")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}
