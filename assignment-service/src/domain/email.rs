//! E-mail addresses, compared case-insensitively.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(String);

/// A syntactically plausible e-mail address (one `@`, a local part, a domain with
/// a dot, no spaces, at most 254 characters). Two addresses are equal when they
/// are equal ignoring **ASCII** case, which is how Jira assignees are matched.
///
/// Only ASCII letters fold: full Unicode case folding would make the Kelvin sign
/// (U+212A) equal to `k`, so an address spelled with it would match someone
/// else's. An address must also be in Unicode normal form C (the Kelvin sign is
/// not: its normal form is `K`), and may hold no control or text-direction
/// characters, so two addresses that look alike are equal or refused.
#[derive(Clone, Serialize, Deserialize)]
pub struct Email {
    as_given: String,
    normalized: String,
}

impl Email {
    /// Parses an address; surrounding whitespace is dropped.
    ///
    /// # Errors
    /// When the address is not plausible.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(InvalidEmail("must not be empty".into()));
        }
        if s.len() > 254 {
            return Err(InvalidEmail("is longer than 254 characters".into()));
        }
        let plausible = s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }) && !s.chars().any(char::is_whitespace);
        if !plausible {
            return Err(InvalidEmail(format!("{s:?} is not an e-mail address")));
        }
        service_runtime::text::line(s, 254).map_err(|e| InvalidEmail(e.to_string()))?;
        if !unicode_normalization::is_nfc(s) {
            return Err(InvalidEmail(format!(
                "{s:?} is not in Unicode normal form C (it has a character, such as the Kelvin sign, that looks like another); write it with the usual characters"
            )));
        }
        Ok(Self {
            as_given: s.to_owned(),
            normalized: s.to_ascii_lowercase(),
        })
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.as_given
    }

    /// The lowercased address, used for matching.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Email {}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.as_given)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_is_ignored_for_equality() {
        let a = Email::parse("Jess@Sentry.io").expect("valid");
        let b = Email::parse("jess@sentry.io").expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.normalized(), "jess@sentry.io");
        assert_eq!(a.as_str(), "Jess@Sentry.io");
    }

    /// Only ASCII case folds, and look-alike spellings are refused, so no
    /// address matches one that is not the same mailbox.
    #[test]
    fn matching_folds_only_ascii_case() {
        let cases: &[(&str, &str, bool)] = &[
            ("kate@x.io", "KATE@X.IO", true),
            ("kate@x.io", "Kate@x.io", true),
            ("\u{e9}lise@x.io", "\u{c9}LISE@x.io", false), // é vs É: not ASCII
            ("stra\u{df}e@x.io", "strasse@x.io", false),   // ß does not become ss
        ];
        for (a, b, equal) in cases {
            let (a, b) = (
                Email::parse(a).expect("valid"),
                Email::parse(b).expect("valid"),
            );
            assert_eq!(a == b, *equal, "{a} vs {b}");
        }
        for refused in [
            "\u{212a}ate@x.io",  // Kelvin sign: not NFC
            "e\u{301}lise@x.io", // decomposed é: not NFC
            "kate\u{202e}@x.io", // right-to-left override
            "kate\u{7}@x.io",    // control character
        ] {
            assert!(Email::parse(refused).is_err(), "{refused:?} accepted");
        }
    }

    #[test]
    fn implausible_addresses_are_refused() {
        for bad in [
            "",
            "jess",
            "jess@",
            "@sentry.io",
            "jess@sentry",
            "a b@c.d",
            "a@b@c.d",
            "a@.c",
            "a@c.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
