//! What the form routes share: reading an `application/x-www-form-urlencoded` body,
//! the French of the model's field errors, and the pages for failed writes.

use bytes::Bytes;
use crm_model::FieldError;
use warp::http::StatusCode;

use super::PageError;
use crate::error::ApiError;
use crate::store::StoreError;

/// A posted form: its `(name, value)` pairs in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// Reads the body a browser posts (`application/x-www-form-urlencoded`); too large
    /// (`413`) or unreadable (`400`) bodies are HTML error pages.
    pub fn read(body: Result<Bytes, ApiError>) -> Result<FormData, PageError> {
        let body = body.map_err(|e| match e.status_code() {
            StatusCode::PAYLOAD_TOO_LARGE => PageError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Formulaire trop volumineux",
                "Le formulaire envoyé est trop volumineux pour être lu.",
            ),
            _ => unreadable(),
        })?;
        let text = std::str::from_utf8(&body).map_err(|_| unreadable())?;
        if !crate::http::query_is_utf8(text) {
            return Err(unreadable());
        }
        serde_urlencoded::from_str(text).map(FormData).map_err(|_| unreadable())
    }

    /// The value of the last field called `name`, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.trim())
    }

    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> FormData {
        FormData(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
    }
}

fn unreadable() -> PageError {
    PageError::bad_request("Le formulaire envoyé ne peut pas être lu. Rouvrez la page et recommencez.")
}

/// The page of a write the store did not make: an import holds the writes (`503`), the
/// customer is unknown or erased (`404`), or the storage failed (`500`).
pub fn write_failed(error: StoreError) -> PageError {
    match error {
        StoreError::ImportRunning => PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Import en cours",
            "Un import de clients est en cours d'écriture : rien n'a été enregistré. Réessayez dans un instant.",
        ),
        StoreError::ReservedByImport { .. } => PageError::new(
            StatusCode::CONFLICT,
            "Import en cours",
            "L'import de clients en cours d'écriture donne cet e-mail (ou cette carte) à un autre client : rien \
             n'a été enregistré.",
        ),
        StoreError::StorageFull { nothing_written } => PageError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "Disque plein",
            if nothing_written {
                "Le disque du serveur est plein : rien n'a été enregistré. Réessayez une fois de la place libérée."
            } else {
                "Le disque du serveur s'est rempli pendant l'enregistrement : il a peut-être été fait. Rouvrez la \
                 fiche pour le savoir avant de recommencer."
            },
        ),
        StoreError::Storage(message) => {
            tracing::error!(%message, "a page's write failed");
            PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Erreur du serveur",
                "L'enregistrement a échoué : rien n'a été enregistré. Réessayez dans un instant.",
            )
        }
        other => PageError::from(other),
    }
}

/// The page for an action on a customer whose personal data was erased.
pub fn erased() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Client effacé",
        "Les données personnelles de ce client ont été effacées à sa demande : il ne peut plus être modifié.",
    )
}

/// The French of a model's field error (crm-model writes them in English for the API),
/// as shown next to the field; `value` is what was typed.
pub fn french_error(error: &FieldError, value: &str) -> String {
    let english = error.error.as_str();
    if english.contains("is required") {
        return "Ce champ est obligatoire.".into();
    }
    if english.contains("must not be empty") {
        return "Ce champ ne peut pas être vide.".into();
    }
    if english.contains("control characters") {
        return "Les caractères de contrôle (tabulation, retour à la ligne…) ne sont pas acceptés.".into();
    }
    match error.field.as_str() {
        "Compte" if english.contains("at most") => format!(
            "10 caractères au plus (le service de paiement range le compte dans des colonnes de 10), pas {}.",
            value.trim().chars().count()
        ),
        _ if english.contains("at most") => format!(
            "{} caractères au plus, pas {}.",
            crm_model::input::MAX_TEXT_CHARS,
            value.trim().chars().count()
        ),
        "Email" => format!(
            "« {} » n'est pas une adresse e-mail : il faut un @, un nom avant et un domaine avec un point après, sans espace.",
            value.trim()
        ),
        "Age" => "L'âge est un nombre entier de 0 à 150, ou vide.".into(),
        "Sexe" => "Choisissez homme, femme ou non précisé.".into(),
        _ => format!("Valeur refusée ({english})."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_body_is_read_and_its_last_value_wins() {
        let form = FormData::read(Ok(Bytes::from_static(b"Nom=Doe+Jon&Email=a%40b.fr&Nom=%C3%89lise%20"))).unwrap();
        assert_eq!(form.get("Nom"), Some("Élise"));
        assert_eq!(form.get("Email"), Some("a@b.fr"));
        assert_eq!(form.get("Phone"), None);
        for bad in [&b"Nom=%FF"[..], b"\xff=1"] {
            let error = FormData::read(Ok(Bytes::copy_from_slice(bad))).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
        }
        let too_large = FormData::read(Err(ApiError::payload_too_large(10))).unwrap_err();
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn field_errors_are_said_in_french() {
        let say = |field: &str, english: &str, value: &str| french_error(&FieldError::new(field, english), value);
        assert_eq!(
            say("Nom", "is required (Nom, or last_name)", ""),
            "Ce champ est obligatoire."
        );
        assert_eq!(say("Nom", "must not be empty", ""), "Ce champ ne peut pas être vide.");
        assert!(
            say("Email", "\"x@y\" is not an e-mail address", "x@y").starts_with("« x@y » n'est pas une adresse e-mail")
        );
        assert!(say("Compte", "must be at most 10 characters (...), not 11", "BKN1CST5300").contains("pas 11."));
        assert!(say("Phone", "must be at most 200 characters", &"1".repeat(201))
            .starts_with("200 caractères au plus, pas 201"));
        assert!(say("Age", "must be a whole number from 0 to 150, or null", "151").contains("de 0 à 150"));
        assert!(say("Sexe", "must be \"h\", \"f\" or empty", "x").contains("homme, femme"));
        assert!(say("Prenom", "must not contain control characters", "a\tb").contains("caractères de contrôle"));
    }
}
