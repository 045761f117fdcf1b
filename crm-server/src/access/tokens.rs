//! The tokens file (`--tokens FILE`): one `name:token:role` line per client, and the
//! constant-time lookup of a presented token.

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Every read: lists, customers, histories, pages.
    Read,
    /// Reads and the ordinary writes: customers, credit, tickets, payments, merges.
    Write,
    /// Everything, the destructive routes included: replace imports, `DELETE`,
    /// exports and the audit.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shortest token accepted: a guessable token would make the whole check moot.
pub const MIN_TOKEN_LEN: usize = 16;

/// Who a request is: the token's name and role, or `local` (no tokens configured, a
/// loopback peer), which may do everything as before tokens existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn local() -> Principal {
        Principal {
            name: "local".into(),
            role: Role::Admin,
        }
    }
}

struct Entry {
    name: String,
    token: Vec<u8>,
    role: Role,
}

/// The configured tokens. Its `Debug` shows names and roles, never a token.
pub struct TokenSet {
    entries: Vec<Entry>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| format!("{}:{}", e.name, e.role)))
            .finish()
    }
}

/// Why a tokens file cannot be used; a bad line names its number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read the tokens file {path}: {message}")]
    Read { path: String, message: String },
    #[error("tokens file line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("the tokens file has no token (lines are name:token:role)")]
    Empty,
}

impl TokenSet {
    /// Reads the tokens file at `path`.
    pub fn load(path: &Path) -> Result<TokenSet, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|e| TokensError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        TokenSet::parse(&text)
    }

    /// `name:token:role` lines; blank lines and lines starting with `#` are skipped.
    /// The token is everything between the first and the last `:`.
    pub fn parse(text: &str) -> Result<TokenSet, TokensError> {
        let mut entries: Vec<Entry> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let bad = |message: String| TokensError::Line { line, message };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (Some((name, rest)), true) = (trimmed.split_once(':'), trimmed.matches(':').count() >= 2) else {
                return Err(bad("expected name:token:role".into()));
            };
            let (token, role) = rest.rsplit_once(':').unwrap_or((rest, ""));
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() {
                return Err(bad("the name is empty".into()));
            }
            let role = Role::parse(role.trim())
                .ok_or_else(|| bad(format!("unknown role {:?}: use read, write or admin", role.trim())))?;
            if token.len() < MIN_TOKEN_LEN {
                return Err(bad(format!(
                    "the token of {name} is shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(format!(
                    "the token of {name} contains spaces or control characters"
                )));
            }
            if entries.iter().any(|e| e.name == name) {
                return Err(bad(format!("the name {name} is given twice")));
            }
            if entries.iter().any(|e| bool::from(e.token.ct_eq(token.as_bytes()))) {
                return Err(bad("this token is already another name's".into()));
            }
            entries.push(Entry {
                name: name.to_string(),
                token: token.as_bytes().to_vec(),
                role,
            });
        }
        if entries.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(TokenSet { entries })
    }

    /// The holder of `presented`. Every entry is compared, each in constant time, so
    /// the time taken says nothing about which token matched or how much of it.
    pub fn holder(&self, presented: &str) -> Option<Principal> {
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.token.ct_eq(presented.as_bytes())) {
                found = Some(Principal {
                    name: entry.name.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# the tills\n\ntills:till-token-0123456789:write\n  bi : bi:token:with:colons : read \nops:ops-token-0123456789:admin\n";

    #[test]
    fn lines_give_names_roles_and_tokens_with_colons() {
        let tokens = TokenSet::parse(FILE).unwrap();
        assert_eq!(tokens.len(), 3);
        let holder = |t: &str| tokens.holder(t).map(|p| (p.name, p.role));
        assert_eq!(holder("till-token-0123456789"), Some(("tills".into(), Role::Write)));
        assert_eq!(holder("bi:token:with:colons"), Some(("bi".into(), Role::Read)));
        assert_eq!(holder("ops-token-0123456789"), Some(("ops".into(), Role::Admin)));
        assert_eq!(holder("ops-token-012345678"), None);
        assert_eq!(holder(""), None);
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        for (text, line, says) in [
            ("a:0123456789abcdef:read\nb:0123456789abcdeX\n", 2, "name:token:role"),
            ("\n# c\nb:0123456789abcdef:root\n", 3, "unknown role"),
            (":0123456789abcdef:read\n", 1, "name is empty"),
            ("a:short:read\n", 1, "shorter than 16"),
            ("a:0123456789abcdef:read\na:0123456789abcdeg:read", 2, "given twice"),
            (
                "a:0123456789abcdef:read\nb:0123456789abcdef:admin",
                2,
                "already another",
            ),
            ("a:0123456789 abcdef:read\n", 1, "spaces"),
        ] {
            match TokenSet::parse(text) {
                Err(TokensError::Line { line: got, message }) => {
                    assert_eq!(got, line, "{text:?}");
                    assert!(message.contains(says), "{message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert_eq!(TokenSet::parse("# nothing\n\n").unwrap_err(), TokensError::Empty);
    }

    #[test]
    fn debug_never_shows_a_token() {
        let shown = format!("{:?}", TokenSet::parse(FILE).unwrap());
        assert!(
            shown.contains("tills:write") && !shown.contains("till-token"),
            "{shown}"
        );
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
    }
}
