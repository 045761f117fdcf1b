//! Fake services of an older deployment behind a fake gateway: one real HTTP server on
//! `127.0.0.1:0` that routes by `Host`, as that system's gateway does, and answers as
//! the shops' service (`gestion-magasin`), the web shop (`e-commerce`), the payment
//! service (`gestion-paiement`) and the scheduler's clock (`scheduler`) do. Tests set
//! what each answers, faults included, and read what each was sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use warp::http::{Response, StatusCode};
use warp::Filter;

/// What a fake service answers to one call.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `200` with this JSON.
    Json(Value),
    /// Any status, content type and body (HTML error pages, cut-off JSON...).
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// A redirect to `location` (the shops' service's `301` to its slashed path).
    Redirect { status: u16, location: String },
    /// The answer, after a delay (a slow or hanging service).
    Slow(Duration, Box<Answer>),
}

impl Answer {
    /// The gateway's page for a service that is down.
    pub fn down() -> Answer {
        Answer::Raw {
            status: 503,
            content_type: "text/html",
            body: "<html><body><h1>503 Service Unavailable</h1></body></html>".into(),
        }
    }
}

/// One call the payment service received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCall {
    pub client_id: String,
    pub card: String,
    pub amount: String,
}

#[derive(Default)]
struct State {
    /// By (service, path).
    answers: HashMap<(String, String), Answer>,
    /// Answers of the payment service, one per call, then `default_payment`.
    payment_queue: Vec<Answer>,
    default_payment: Option<Answer>,
    payment_calls: Vec<PaymentCall>,
    /// Every call, as (Host, path).
    calls: Vec<(String, String)>,
}

/// The fake gateway and its services; stopped when dropped.
pub struct FakeGateway {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The shops' service's path, and the slashed one its `301` points to.
pub const SALES_PATH: &str = "/api/sales";
pub const SALES_SLASHED: &str = "/api/sales/";
pub const WEB_SHOP_PATH: &str = "/ecommerce/getTickets";
pub const PAYMENT_PATH: &str = "/api/proceed-payement";
pub const CLOCK_PATH: &str = "/clock/time";

impl FakeGateway {
    /// Starts the gateway with services that answer no ticket, a payment service
    /// that accepts every payment, and a clock at 07/01/2019.
    pub async fn start() -> FakeGateway {
        let state = Arc::new(Mutex::new(State::default()));
        let routes = {
            let state = state.clone();
            warp::any()
                .and(warp::header::optional::<String>("host"))
                .and(warp::path::full())
                .and(warp::body::bytes())
                .then(move |host: Option<String>, path: warp::path::FullPath, body: Bytes| {
                    let state = state.clone();
                    async move { answer(&state, host.unwrap_or_default(), path.as_str().to_string(), body).await }
                })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local addr");
        let server = tokio::spawn(warp::serve(routes).incoming(listener).run());
        let gateway = FakeGateway { address, state, server };
        gateway.set(
            "gestion-magasin",
            SALES_PATH,
            Answer::Redirect {
                status: 301,
                location: SALES_SLASHED.into(),
            },
        );
        gateway.set_sales(json!({"tickets": []}));
        gateway.set("e-commerce", WEB_SHOP_PATH, Answer::Json(json!({"tickets": []})));
        gateway.set("scheduler", CLOCK_PATH, Answer::Json(json!("07/01/2019-01:00:00")));
        gateway.state().default_payment = Some(Answer::Json(json!({"status": "OK", "message": "paid"})));
        gateway
    }

    /// The gateway's URL, as `--gateway` takes it.
    pub fn url(&self) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://{}/", self.address)).expect("gateway URL")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake gateway state")
    }

    /// What `service` answers on `path` from now on.
    pub fn set(&self, service: &str, path: &str, answer: Answer) {
        self.state().answers.insert((service.into(), path.into()), answer);
    }

    /// What the shops' service answers on its slashed sales path.
    pub fn set_sales(&self, answer: Value) {
        self.set("gestion-magasin", SALES_SLASHED, Answer::Json(answer));
    }

    /// What the web shop answers.
    pub fn set_web_shop(&self, answer: Value) {
        self.set("e-commerce", WEB_SHOP_PATH, Answer::Json(answer));
    }

    /// The next payment calls get these answers, in order; later ones `default`.
    pub fn queue_payment_answers(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state().payment_queue.extend(answers);
    }

    pub fn set_payment_answer(&self, answer: Answer) {
        self.state().default_payment = Some(answer);
    }

    /// Every call the payment service received, in order.
    pub fn payment_calls(&self) -> Vec<PaymentCall> {
        self.state().payment_calls.clone()
    }

    /// Every call, as (Host, path).
    pub fn calls(&self) -> Vec<(String, String)> {
        self.state().calls.clone()
    }
}

async fn answer(state: &Mutex<State>, host: String, path: String, body: Bytes) -> Response<String> {
    // The gateway's own Host carries a port; services are named without one.
    let service = host.split(':').next().unwrap_or_default().to_string();
    let found = {
        let mut state = state.lock().expect("fake gateway state");
        state.calls.push((service.clone(), path.clone()));
        if service == "gestion-paiement" && path == PAYMENT_PATH {
            let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
            state.payment_calls.push(PaymentCall {
                client_id: form.get("client_id").cloned().unwrap_or_default(),
                card: form.get("card").cloned().unwrap_or_default(),
                amount: form.get("amount").cloned().unwrap_or_default(),
            });
            if state.payment_queue.is_empty() {
                state.default_payment.clone()
            } else {
                Some(state.payment_queue.remove(0))
            }
        } else {
            state.answers.get(&(service.clone(), path.clone())).cloned()
        }
    };
    let mut answer = found.unwrap_or(Answer::Raw {
        status: 404,
        content_type: "text/html",
        body: format!("<h1>no route {path} on {service:?}</h1>"),
    });
    loop {
        match answer {
            Answer::Slow(delay, then) => {
                tokio::time::sleep(delay).await;
                answer = *then;
            }
            Answer::Json(value) => return reply(200, "application/json", value.to_string(), None),
            Answer::Raw {
                status,
                content_type,
                body,
            } => return reply(status, content_type, body, None),
            Answer::Redirect { status, location } => return reply(status, "text/html", String::new(), Some(location)),
        }
    }
}

fn reply(status: u16, content_type: &str, body: String, location: Option<String>) -> Response<String> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).expect("status"))
        .header("content-type", content_type);
    if let Some(location) = location {
        builder = builder.header("location", location);
    }
    builder.body(body).expect("response")
}
