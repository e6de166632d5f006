use std::fmt;

use validator::ValidateEmail;

/// Longest address SMTP can carry (RFC 5321 path limit less the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// An email address: trimmed, lower-cased, of valid format and length.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("Email is required.".into());
        }
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!(
                "Email must be at most {MAX_EMAIL_CHARS} characters."
            ));
        }
        if !email.validate_email() {
            return Err("Invalid email format.".into());
        }
        Ok(Self(email))
    }

    /// The same normalisation, without judging the format: used to look an address up at
    /// login, where a malformed one simply matches no account.
    pub fn normalize(raw: &str) -> String {
        raw.trim().to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
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
}
