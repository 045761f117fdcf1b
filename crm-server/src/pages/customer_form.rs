//! The customer forms, posted without JavaScript as `application/x-www-form-urlencoded`
//! with the fields named as the API names them (`Nom`, `Prenom`, `Email`, `Phone`,
//! `Age`, `Sexe`, `Compte`) and validated by crm-model's rules:
//!
//! - `GET /api/customers/new`, the new customer form, posted to `POST /api/customers`:
//!   `303` to the new customer's page, or the form again with each field's error next
//!   to it and the values kept (`422`, or `409` when the e-mail is another customer's,
//!   naming and linking that customer);
//! - `GET /api/customers/<IdClient>/edit`, the edit form, posted to
//!   `POST /api/customers/<IdClient>/edit`. The form carries the values it started with
//!   (`orig_<field>`, hidden), and only the fields that differ from them are sent to the
//!   store as a patch, so a change made meanwhile by someone else to another field is
//!   kept. Then `303` back to the customer's page, or the form again as above.

use askama::Template;
use bytes::Bytes;
use crm_model::{CustomerInput, CustomerPatch, CustomerRecord, FieldError, InputError, NewCustomer};
use serde_json::{Map, Value};
use uuid::Uuid;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::customer::Notice;
use super::forms::{erased, french_error, write_failed, FormData};
use super::{customer, guard, render, see_other, PageError};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// One field of the forms: its API name, French label and how it is typed.
struct Spec {
    name: &'static str,
    label: &'static str,
    input: &'static str,
    autocomplete: &'static str,
    maxlength: Option<usize>,
    required: bool,
    hint: Option<&'static str>,
}

const SPECS: [Spec; 7] = [
    Spec {
        name: "Nom",
        label: "Nom",
        input: "text",
        autocomplete: "family-name",
        maxlength: Some(crm_model::input::MAX_TEXT_CHARS),
        required: true,
        hint: None,
    },
    Spec {
        name: "Prenom",
        label: "Prénom",
        input: "text",
        autocomplete: "given-name",
        maxlength: Some(crm_model::input::MAX_TEXT_CHARS),
        required: false,
        hint: None,
    },
    Spec {
        name: "Email",
        label: "E-mail",
        input: "email",
        autocomplete: "email",
        maxlength: Some(crm_model::input::MAX_TEXT_CHARS),
        required: false,
        hint: Some("Une adresse ne peut appartenir qu'à un seul client."),
    },
    Spec {
        name: "Phone",
        label: "Téléphone",
        input: "tel",
        autocomplete: "tel",
        maxlength: Some(crm_model::input::MAX_TEXT_CHARS),
        required: false,
        hint: None,
    },
    Spec {
        name: "Age",
        label: "Âge",
        input: "number",
        autocomplete: "off",
        maxlength: None,
        required: false,
        hint: Some("De 0 à 150 ans ; vide si inconnu."),
    },
    Spec {
        name: "Sexe",
        label: "Sexe",
        input: "select",
        autocomplete: "off",
        maxlength: None,
        required: false,
        hint: None,
    },
    Spec {
        name: "Compte",
        label: "Compte",
        input: "text",
        autocomplete: "off",
        maxlength: Some(crm_model::input::MAX_COMPTE_CHARS),
        required: false,
        hint: Some("Référence du compte bancaire, 10 caractères au plus."),
    },
];

const SEXE_OPTIONS: [(&str, &str); 3] = [("", "non précisé"), ("h", "homme"), ("f", "femme")];

/// The fields' values in [`SPECS`] order; `None` is a field the form did not send.
type Values = [Option<String>; 7];

fn record_values(record: &CustomerRecord) -> Values {
    [
        record.nom.clone(),
        record.prenom.clone(),
        record.email.clone(),
        record.phone.clone(),
        record.age.map(|a| a.to_string()).unwrap_or_default(),
        record.sexe.as_str().to_string(),
        record.compte.clone(),
    ]
    .map(Some)
}

fn form_values(form: &FormData, prefix: &str) -> Values {
    std::array::from_fn(|i| form.get(&format!("{prefix}{}", SPECS[i].name)).map(str::to_string))
}

/// The customer input of the given fields, as the JSON routes would receive it.
fn input_of(values: &Values) -> Result<CustomerInput, PageError> {
    let object: Map<String, Value> = SPECS
        .iter()
        .zip(values)
        .filter_map(|(spec, value)| Some((spec.name.to_string(), Value::String(value.clone()?))))
        .collect();
    CustomerInput::from_object(object).map_err(|_| {
        PageError::bad_request("Le formulaire envoyé ne peut pas être lu. Rouvrez la page et recommencez.")
    })
}

/// The customer who holds an e-mail, as a link.
#[derive(Debug, Clone)]
struct Holder {
    name: String,
    href: String,
}

impl Holder {
    async fn of<S: Store>(state: &AppState<S>, id_client: Uuid) -> Holder {
        let name = match state.store.customer(id_client).await {
            Ok(Some(record)) => customer::heading(&record),
            _ => format!("client {id_client}"),
        };
        Holder {
            name,
            href: format!("/api/customers/{id_client}"),
        }
    }
}

struct SexeOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct FormField {
    name: &'static str,
    label: &'static str,
    input: &'static str,
    autocomplete: &'static str,
    maxlength: Option<usize>,
    required: bool,
    hint: Option<&'static str>,
    value: String,
    /// What the edit form started with (sent back hidden).
    original: Option<String>,
    invalid: bool,
    error: Option<String>,
    /// The other customer holding this e-mail.
    holder: Option<Holder>,
    options: Vec<SexeOption>,
}

#[derive(Template)]
#[template(path = "customer_form.html")]
struct CustomerFormPage {
    title: String,
    intro: &'static str,
    action: String,
    submit_label: &'static str,
    back_href: String,
    back_label: &'static str,
    problem: Option<String>,
    /// A taken e-mail and the customer who holds it.
    taken: Option<(String, Holder)>,
    fields: Vec<FormField>,
    /// The CSRF token the form posts back.
    csrf: Option<String>,
}

/// Which form, and what it needs to be drawn again.
enum Kind<'a> {
    New,
    Edit {
        record: &'a CustomerRecord,
        originals: &'a Values,
    },
}

/// Why the form comes back: its fields' errors, or the e-mail of another customer.
#[derive(Default)]
struct Problems {
    errors: Vec<FieldError>,
    holder: Option<(String, Holder)>,
}

fn form_page(
    kind: Kind<'_>,
    values: &Values,
    problems: Problems,
    status: StatusCode,
    csrf: Option<String>,
) -> Response {
    let fields = SPECS
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let original = match &kind {
                Kind::New => None,
                Kind::Edit { originals, .. } => Some(originals[i].clone().unwrap_or_default()),
            };
            let value = values[i].clone().or_else(|| original.clone()).unwrap_or_default();
            let error = problems
                .errors
                .iter()
                .find(|e| e.field == spec.name)
                .map(|e| french_error(e, &value));
            let holder = problems
                .holder
                .as_ref()
                .filter(|_| spec.name == "Email")
                .map(|(_, holder)| holder.clone());
            let options = if spec.input == "select" {
                let current = value.trim().to_lowercase();
                SEXE_OPTIONS
                    .iter()
                    .map(|&(value, label)| SexeOption {
                        value,
                        label,
                        selected: value == current,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            FormField {
                name: spec.name,
                label: spec.label,
                input: spec.input,
                autocomplete: spec.autocomplete,
                maxlength: spec.maxlength,
                required: spec.required,
                hint: spec.hint,
                value,
                original,
                invalid: error.is_some() || holder.is_some(),
                error,
                holder,
                options,
            }
        })
        .collect();
    let problem = match (&problems.holder, problems.errors.len()) {
        (Some(_), _) | (None, 0) => None,
        (None, 1) => Some("Rien n'a été enregistré : corrigez le champ signalé.".to_string()),
        (None, n) => Some(format!("Rien n'a été enregistré : corrigez les {n} champs signalés.")),
    };
    let page = match kind {
        Kind::New => CustomerFormPage {
            title: "Nouveau client".into(),
            intro: "Seul le nom est obligatoire. Le client reçoit son IdClient à l'enregistrement ; sa carte de fidélité s'attribue ensuite depuis sa page.",
            action: "/api/customers".into(),
            submit_label: "Créer le client",
            back_href: "/api".into(),
            back_label: "Retour à la liste des clients",
            problem,
            taken: problems.holder,
            fields,
            csrf,
        },
        Kind::Edit { record, .. } => CustomerFormPage {
            title: format!("Modifier {}", customer::heading(record)),
            intro: "Seuls les champs que vous changez sont enregistrés.",
            action: format!("/api/customers/{}/edit", record.id_client),
            submit_label: "Enregistrer",
            back_href: format!("/api/customers/{}", record.id_client),
            back_label: "Retour à la fiche du client",
            problem,
            taken: problems.holder,
            fields,
            csrf,
        },
    };
    render(&page, status)
}

/// Splits a store's answer to a write: a taken e-mail comes back on the form.
async fn taken_email<S: Store>(state: &AppState<S>, error: StoreError) -> Result<Problems, PageError> {
    match error {
        StoreError::EmailTaken { email, existing } => Ok(Problems {
            errors: Vec::new(),
            holder: Some((email, Holder::of(state, existing).await)),
        }),
        other => Err(write_failed(other)),
    }
}

fn invalid(error: InputError) -> Result<Problems, PageError> {
    match error {
        InputError::Invalid(errors) | InputError::TooManyInvalid { listed: errors, .. } => {
            Ok(Problems { errors, holder: None })
        }
        InputError::Unreadable(_) => Err(PageError::bad_request(
            "Le formulaire envoyé ne peut pas être lu. Rouvrez la page et recommencez.",
        )),
    }
}

/// The new customer form (HTML), posted to `POST /api/customers`.
#[utoipa::path(get, path = "/api/customers/new", tag = "pages", operation_id = "new_customer_page",
    responses((status = 200, description = "The form", content_type = "text/html", body = String)))]
pub fn new_page(csrf: Option<String>) -> Response {
    form_page(
        Kind::New,
        &Default::default(),
        Problems::default(),
        StatusCode::OK,
        csrf,
    )
}

/// The fields of the customer forms, as they are posted.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct CustomerForm {
    /// Last name; required on create, may not be emptied.
    Nom: Option<String>,
    Prenom: Option<String>,
    Email: Option<String>,
    Phone: Option<String>,
    /// 0 to 150, or empty.
    Age: Option<String>,
    /// `h`, `f` or empty.
    Sexe: Option<String>,
    /// At most 10 characters.
    Compte: Option<String>,
}

/// Creates a customer from the new customer form; answers pages, never JSON.
#[utoipa::path(post, path = "/api/customers", tag = "pages", operation_id = "create_customer_form",
    request_body(content = CustomerForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Created: to the new customer's page (`?notice=created`)"),
        (status = 400, description = "Unreadable form (HTML page)", content_type = "text/html", body = String),
        (status = 403, description = "Sent from another site (`Sec-Fetch-Site`, `Origin`): refused (HTML page)", content_type = "text/html", body = String),
        (status = 409, description = "The e-mail is another customer's: the form again, naming and linking the holder", content_type = "text/html", body = String),
        (status = 422, description = "Invalid fields: the form again, each error next to its field, values kept", content_type = "text/html", body = String),
        (status = 503, description = "An import is being written (HTML page)", content_type = "text/html", body = String)))]
pub async fn create<S: Store>(state: AppState<S>, headers: HeaderMap, body: Result<Bytes, ApiError>) -> Response {
    let outcome = async {
        let form = FormData::read(body)?;
        guard::check_form(&state, &headers, &form)?;
        let csrf = state.access.csrf_for(&headers);
        let mut values = form_values(&form, "");
        // Every field is part of a new customer, sent or not.
        for value in &mut values {
            value.get_or_insert_with(String::new);
        }
        let problems = match NewCustomer::from_input(&input_of(&values)?) {
            Err(error) => invalid(error)?,
            Ok(new) => match state.store.create_customer(new).await {
                Ok(record) => {
                    return Ok(see_other(&format!(
                        "/api/customers/{}?{}",
                        record.id_client,
                        Notice::Created.query()
                    )))
                }
                Err(error) => taken_email(&state, error).await?,
            },
        };
        let status = if problems.holder.is_some() {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        Ok::<_, PageError>(form_page(Kind::New, &values, problems, status, csrf))
    };
    outcome.await.unwrap_or_else(PageError::into_response)
}

/// The live customer `id`, or the page saying why there is none.
async fn live_customer<S: Store>(state: &AppState<S>, id: &str) -> Result<CustomerRecord, PageError> {
    let id_client = Uuid::parse_str(id).map_err(|_| PageError::customer_not_found())?;
    match state.store.customer(id_client).await? {
        None => Err(PageError::customer_not_found()),
        Some(record) if record.erased => Err(erased()),
        Some(record) => Ok(record),
    }
}

/// The edit form of a customer (HTML), filled with its values.
#[utoipa::path(get, path = "/api/customers/{IdClient}/edit", tag = "pages", operation_id = "edit_customer_page",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 200, description = "The form", content_type = "text/html", body = String),
        (status = 404, description = "Unknown or erased customer (HTML page)", content_type = "text/html", body = String)))]
pub async fn edit_page<S: Store>(state: &AppState<S>, id: &str, csrf: Option<String>) -> Response {
    match live_customer(state, id).await {
        Ok(record) => {
            let values = record_values(&record);
            form_page(
                Kind::Edit {
                    record: &record,
                    originals: &values,
                },
                &values,
                Problems::default(),
                StatusCode::OK,
                csrf,
            )
        }
        Err(error) => error.into_response(),
    }
}

/// The fields of `values` that differ from `originals`: the patch to send.
fn changed(values: &Values, originals: &Values) -> Values {
    std::array::from_fn(|i| {
        values[i]
            .clone()
            .filter(|v| v.trim() != originals[i].as_deref().unwrap_or_default().trim())
    })
}

/// Saves the fields the edit form changed; answers pages, never JSON.
#[utoipa::path(post, path = "/api/customers/{IdClient}/edit", tag = "pages", operation_id = "edit_customer_form",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    request_body(content = CustomerForm, content_type = "application/x-www-form-urlencoded",
        description = "The fields, and `orig_<field>` (hidden) with the values the form started with: only the fields that differ from them are changed"),
    responses((status = 303, description = "Saved (or nothing changed): to the customer's page"),
        (status = 400, description = "Unreadable form (HTML page)", content_type = "text/html", body = String),
        (status = 403, description = "Sent from another site (`Sec-Fetch-Site`, `Origin`): refused (HTML page)", content_type = "text/html", body = String),
        (status = 404, description = "Unknown or erased customer (HTML page)", content_type = "text/html", body = String),
        (status = 409, description = "The e-mail is another customer's: the form again, naming and linking the holder", content_type = "text/html", body = String),
        (status = 422, description = "Invalid fields: the form again, each error next to its field, values kept", content_type = "text/html", body = String),
        (status = 503, description = "An import is being written (HTML page)", content_type = "text/html", body = String)))]
pub async fn edit<S: Store>(
    id: String,
    state: AppState<S>,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Response {
    let outcome = async {
        let form = FormData::read(body)?;
        guard::check_form(&state, &headers, &form)?;
        let csrf = state.access.csrf_for(&headers);
        let record = live_customer(&state, &id).await?;
        let values = form_values(&form, "");
        let stored = record_values(&record);
        // What the form started with; a form without them is compared with the store.
        let posted_originals = form_values(&form, "orig_");
        let originals: Values = std::array::from_fn(|i| posted_originals[i].clone().or_else(|| stored[i].clone()));
        let changes = changed(&values, &originals);
        let page_of = format!("/api/customers/{}", record.id_client);
        if changes.iter().all(Option::is_none) {
            return Ok(see_other(&format!("{page_of}?{}", Notice::Unchanged.query())));
        }
        let problems = match CustomerPatch::from_input(&input_of(&changes)?) {
            Err(error) => invalid(error)?,
            Ok(patch) => match state.store.update_customer(record.id_client, patch).await {
                Ok(_) => return Ok(see_other(&format!("{page_of}?{}", Notice::Saved.query()))),
                Err(StoreError::CustomerNotFound) => return Err(erased()),
                Err(error) => taken_email(&state, error).await?,
            },
        };
        let status = if problems.holder.is_some() {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let kind = Kind::Edit {
            record: &record,
            originals: &originals,
        };
        Ok::<_, PageError>(form_page(kind, &values, problems, status, csrf))
    };
    outcome.await.unwrap_or_else(PageError::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        form_values(&FormData::of(pairs), "")
    }

    #[test]
    fn only_the_fields_that_differ_from_the_originals_are_sent() {
        let originals = values(&[
            ("Nom", "Doe"),
            ("Prenom", "Jon"),
            ("Email", ""),
            ("Phone", "01"),
            ("Age", "30"),
            ("Sexe", "f"),
            ("Compte", ""),
        ]);
        let typed = values(&[
            ("Nom", "Doe"),
            ("Prenom", ""),
            ("Email", "jon@doe.fr "),
            ("Phone", "01"),
            ("Age", "30"),
            ("Sexe", "f"),
        ]);
        let patch = changed(&typed, &originals);
        assert_eq!(
            patch,
            [
                None,
                Some(String::new()),
                Some("jon@doe.fr".into()),
                None,
                None,
                None,
                None
            ],
            "a field emptied is a change, a field not sent is none"
        );
        let patch = CustomerPatch::from_input(&input_of(&patch).unwrap()).unwrap();
        assert_eq!(
            (patch.prenom.as_deref(), patch.email.as_deref(), patch.nom),
            (Some(""), Some("jon@doe.fr"), None)
        );
    }
}
