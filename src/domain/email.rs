use std::fmt;

use unicode_normalization::UnicodeNormalization;
use validator::ValidateEmail;

/// Longest address SMTP can carry (RFC 5321 path limit less the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// An email address in its one canonical spelling, of valid format and length.
///
/// One mailbox, one account: the address is trimmed, put in Unicode NFC, the local part
/// lower-cased, and the domain converted to its ASCII (IDNA) form, so `bücher.example` and
/// `xn--bcher-kva.example`, or NFC and NFD spellings, are the same address. Control,
/// whitespace and invisible characters (a zero-width space, say) are refused rather than
/// dropped: they only ever serve to make two addresses that look the same.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("Email is required.".into());
        }
        if trimmed.chars().nth(MAX_EMAIL_CHARS).is_some() {
            return Err(too_long());
        }
        let email = canonical(trimmed).ok_or_else(invalid)?;
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(too_long());
        }
        if !email.validate_email() {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    /// The address to look an account up by (login, forgot-password): its length and
    /// characters are checked first, before any normalisation work (NFC and IDNA of a 1 MB
    /// string cost a third of a second); its format is not judged, a malformed one simply
    /// matches no account.
    pub fn lookup(raw: &str) -> Result<String, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("Email is required.".into());
        }
        if trimmed.chars().nth(MAX_EMAIL_CHARS).is_some() {
            return Err(too_long());
        }
        super::text::no_control("Email", trimmed, false)?;
        Ok(Self::normalize(trimmed))
    }

    /// The same canonical spelling, without judging the format or the length: for addresses
    /// that were bounded already (the command line, [`Email::lookup`]).
    pub fn normalize(raw: &str) -> String {
        let trimmed = raw.trim();
        canonical(trimmed).unwrap_or_else(|| trimmed.to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// `local@domain` with the local part in NFC and lower case and the domain in IDNA ASCII;
/// `None` when a character is not allowed or the domain is not a valid IDNA name.
fn canonical(trimmed: &str) -> Option<String> {
    if trimmed.chars().any(is_hidden) {
        return None;
    }
    let (local, domain) = trimmed.rsplit_once('@')?;
    let local: String = local.nfc().collect::<String>().to_lowercase();
    let domain = idna::domain_to_ascii(domain).ok()?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

/// Characters that have no place in an address: controls, whitespace, and those a reader
/// cannot see (format characters, joiners, direction marks, variation selectors, fillers).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

fn invalid() -> String {
    "Invalid email format.".into()
}

fn too_long() -> String {
    format!("Email must be at most {MAX_EMAIL_CHARS} characters.")
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn invalid_emails_are_refused_with_a_reason() {
        assert_eq!(Email::parse("").unwrap_err(), "Email is required.");
        assert_eq!(Email::parse("   ").unwrap_err(), "Email is required.");
        for bad in ["not-an-email", "a@", "@b.com", "a b@c.com", "a@b@c.com"] {
            assert_eq!(
                Email::parse(bad).unwrap_err(),
                "Invalid email format.",
                "{bad}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).unwrap_err().contains("at most 254"));
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in [
            "alice@example.com\u{200B}",
            "ali\u{200B}ce@example.com",
            "alice\u{00AD}@example.com",
            "alice@exa\u{200D}mple.com",
            "ali\u{0007}ce@example.com",
            "alice\u{202E}@example.com",
            "ali\u{00A0}ce@example.com",
            "alice\u{FEFF}@example.com",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err(),
                "Invalid email format.",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_mailbox_has_one_spelling() {
        let nfc = Email::parse("user@jos\u{00E9}.example").unwrap();
        let nfd = Email::parse("user@jose\u{0301}.example").unwrap();
        assert_eq!(nfc, nfd);
        assert_eq!(nfc.as_str(), "user@xn--jos-dma.example");
        let unicode = Email::parse("user@B\u{00FC}cher.example").unwrap();
        let ascii = Email::parse("USER@xn--bcher-kva.example").unwrap();
        assert_eq!(unicode, ascii);
        assert_eq!(ascii.as_str(), "user@xn--bcher-kva.example");
        // Login finds the account whichever spelling is typed.
        assert_eq!(Email::normalize("user@bücher.example"), ascii.as_str());
        assert_eq!(Email::normalize("USER@JOSE\u{0301}.example"), nfc.as_str());
    }

    #[test]
    fn lookups_are_bounded_before_any_normalisation() {
        assert_eq!(
            Email::lookup(" Bob@Example.COM ").unwrap(),
            "bob@example.com"
        );
        assert_eq!(
            Email::lookup("no format judged").unwrap(),
            "no format judged"
        );
        let huge = "é".repeat(1_000_000);
        let started = std::time::Instant::now();
        assert!(Email::lookup(&huge).unwrap_err().contains("at most 254"));
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        assert!(Email::lookup(&"a".repeat(255)).is_err());
        assert!(Email::lookup(&"a".repeat(254)).is_ok());
        assert_eq!(
            Email::lookup("a\0b@example.com").unwrap_err(),
            "Email must not contain control characters."
        );
        assert_eq!(Email::lookup("  ").unwrap_err(), "Email is required.");
    }
}
