//! List queries of `/api/v1`: `limit`, `cursor`, `q`, `sort`, and the page they answer.

use serde::{Deserialize, Serialize};

use crate::validation::InputError;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// The keys a customer list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    Id,
    Nom,
    Credit,
    PanierMoyen,
}

impl SortKey {
    pub const ALL: [SortKey; 4] = [SortKey::Id, SortKey::Nom, SortKey::Credit, SortKey::PanierMoyen];

    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Nom => "Nom",
            SortKey::Credit => "Credit",
            SortKey::PanierMoyen => "PanierMoyen",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SortDirection {
    #[default]
    Ascending,
    Descending,
}

/// A sort order: key and direction; written `Credit` or `-Credit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sort {
    pub key: SortKey,
    pub direction: SortDirection,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            key: SortKey::Id,
            direction: SortDirection::Ascending,
        }
    }
}

impl Sort {
    pub fn parse(text: &str) -> Result<Sort, InputError> {
        let (direction, name) = match text.strip_prefix('-') {
            Some(rest) => (SortDirection::Descending, rest),
            None => (SortDirection::Ascending, text.strip_prefix('+').unwrap_or(text)),
        };
        SortKey::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))
            .map(|key| Sort { key, direction })
            .ok_or_else(|| {
                InputError::Unreadable(format!(
                    "sort {text:?} is not one of id, Nom, Credit, PanierMoyen (prefix - for descending)"
                ))
            })
    }

    pub fn descending(self) -> bool {
        self.direction == SortDirection::Descending
    }
}

impl std::fmt::Display for Sort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.descending() {
            f.write_str("-")?;
        }
        f.write_str(self.key.as_str())
    }
}

/// A validated list query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    /// Opaque position from a previous page's `next_cursor`; the store decodes it.
    pub cursor: Option<String>,
    pub q: Option<String>,
    pub sort: Sort,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            limit: DEFAULT_LIMIT,
            cursor: None,
            q: None,
            sort: Sort::default(),
        }
    }
}

/// The raw query string parameters, as a client sends them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
}

impl ListQuery {
    /// Validates the parameters: a `limit` that is not a number from 1 to 1000 or an
    /// unknown `sort` is unreadable (400).
    pub fn from_params(params: &ListParams) -> Result<ListQuery, InputError> {
        let limit = match params.limit.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(InputError::Unreadable(format!(
                        "limit {text:?} is not a number from 1 to {MAX_LIMIT}"
                    )))
                }
            },
        };
        let sort = match params.sort.as_deref().map(str::trim) {
            None | Some("") => Sort::default(),
            Some(text) => Sort::parse(text)?,
        };
        let non_empty = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(ListQuery {
            limit,
            cursor: non_empty(&params.cursor),
            q: non_empty(&params.q),
            sort,
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// How many items the whole list (or search) holds.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(limit: Option<&str>, sort: Option<&str>) -> ListParams {
        ListParams {
            limit: limit.map(Into::into),
            sort: sort.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_bounds() {
        let q = ListQuery::from_params(&ListParams::default()).unwrap();
        assert_eq!((q.limit, q.sort), (DEFAULT_LIMIT, Sort::default()));
        assert_eq!(ListQuery::from_params(&params(Some("1000"), None)).unwrap().limit, 1000);
        for bad in ["0", "1001", "-1", "abc", "1.5"] {
            assert!(
                matches!(
                    ListQuery::from_params(&params(Some(bad), None)),
                    Err(InputError::Unreadable(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn sort_names_and_directions() {
        let s = Sort::parse("-Credit").unwrap();
        assert_eq!((s.key, s.descending()), (SortKey::Credit, true));
        assert_eq!(Sort::parse("nom").unwrap().key, SortKey::Nom);
        assert_eq!(Sort::parse("-PanierMoyen").unwrap().to_string(), "-PanierMoyen");
        assert!(Sort::parse("Email").is_err());
        assert!(ListQuery::from_params(&params(None, Some("bogus"))).is_err());
    }
}
