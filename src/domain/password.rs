use std::fmt;

pub const MIN_PASSWORD_CHARS: usize = 8;
/// bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// A password fit to be hashed. Never printed: `Debug` shows `[redacted]`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("Password is required.".into());
        }
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(format!(
                "Password must be at least {MIN_PASSWORD_CHARS} characters long."
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "Password must be at most {MAX_PASSWORD_BYTES} bytes long."
            ));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules_use_characters_below_and_bytes_above() {
        assert_eq!(
            Password::parse("short".into()).unwrap_err(),
            "Password must be at least 8 characters long."
        );
        assert_eq!(
            Password::parse(String::new()).unwrap_err(),
            "Password is required."
        );
        assert!(Password::parse("x".repeat(72)).is_ok());
        assert!(
            Password::parse("x".repeat(73))
                .unwrap_err()
                .contains("72 bytes")
        );
        // 8 characters but 24 bytes: long enough, and within bcrypt's limit.
        assert!(Password::parse("€".repeat(8)).is_ok());
        // 25 characters but 75 bytes: over bcrypt's limit.
        assert!(Password::parse("€".repeat(25)).is_err());
    }

    #[test]
    fn passwords_do_not_print() {
        let p = Password::parse("hunter2hunter2".into()).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
