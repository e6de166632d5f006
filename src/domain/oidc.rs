//! Inputs of sign-in with an external OpenID provider: where the browser goes back to, what
//! the provider's redirect carries, and the one-time code a front end exchanges.

use url::Url;

use crate::error::AppError;

/// Longest `redirect_to` read.
pub const MAX_REDIRECT_CHARS: usize = 2048;
/// Longest `code` or `state` read (a provider's codes are well under 1 KiB; our states are 43).
const MAX_PARAMETER_CHARS: usize = 2048;
/// Longest provider `error` read.
const MAX_ERROR_CHARS: usize = 64;
/// Longest exchange code read: ours are 43 characters.
const MAX_EXCHANGE_CODE_CHARS: usize = 256;

pub const INVALID_REDIRECT: &str = "redirect_to must be a URL this service may send you back to.";
pub const INVALID_SIGN_IN_ATTEMPT: &str = "Invalid or expired sign-in attempt";
pub const INVALID_EXCHANGE_CODE: &str = "Invalid or expired code.";

/// Where a flow sends the browser back to: an absolute http(s) URL without credentials,
/// bounded; whether it is on the allow-list is the service's to say.
#[derive(Clone, Debug)]
pub struct RedirectTarget(Url);

impl RedirectTarget {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let refused = || AppError::validation("redirect_to", INVALID_REDIRECT);
        let raw = raw.trim();
        if raw.is_empty()
            || raw.chars().nth(MAX_REDIRECT_CHARS).is_some()
            || raw.chars().any(char::is_control)
        {
            return Err(refused());
        }
        let url = Url::parse(raw).map_err(|_| refused())?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.username().is_empty()
            && url.password().is_none();
        if !plain {
            return Err(refused());
        }
        Ok(Self(url))
    }

    /// Is it under `prefix` (an allow-list entry)? The same scheme, host and port, and a path
    /// that continues the prefix's at a boundary: `https://app.example.com` does not allow
    /// `https://app.example.com.evil.test`, nor `https://app.example.com/a` `…/ab`.
    pub fn is_under(&self, prefix: &str) -> bool {
        let Ok(prefix) = Url::parse(prefix) else {
            return false;
        };
        if self.0.origin() != prefix.origin() {
            return false;
        }
        let base = prefix.path().trim_end_matches('/');
        let path = self.0.path();
        path.strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// What a provider's redirect to the callback carries.
#[derive(Debug)]
pub struct OidcCallback {
    pub state: String,
    pub code: Option<String>,
    /// The provider's `error` (the user declined, …).
    pub error: Option<String>,
}

impl OidcCallback {
    /// A callback with no usable `state` is refused: it names no flow to go back to.
    pub fn parse(
        state: Option<&str>,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<Self, AppError> {
        let refused = || AppError::validation("state", INVALID_SIGN_IN_ATTEMPT);
        let state = state
            .filter(|s| !s.is_empty() && s.chars().nth(MAX_PARAMETER_CHARS).is_none())
            .ok_or_else(refused)?;
        let bounded = |value: Option<&str>, max: usize| {
            value
                .filter(|v| !v.is_empty())
                .map(|v| v.chars().take(max).collect::<String>())
        };
        Ok(Self {
            state: state.to_owned(),
            code: bounded(code, MAX_PARAMETER_CHARS),
            error: bounded(error, MAX_ERROR_CHARS),
        })
    }
}

/// The one-time code a callback hands the front end.
#[derive(Debug)]
pub struct ExchangeCode(String);

impl ExchangeCode {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.chars().nth(MAX_EXCHANGE_CODE_CHARS).is_some() {
            return Err(AppError::validation("code", INVALID_EXCHANGE_CODE));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_under_the_allow_list() {
        let under = |to: &str, prefix: &str| RedirectTarget::parse(to).unwrap().is_under(prefix);
        assert!(under("https://app.example.com", "https://app.example.com"));
        assert!(under("https://app.example.com/", "https://app.example.com"));
        assert!(under(
            "https://app.example.com/done?x=1",
            "https://app.example.com"
        ));
        assert!(under(
            "https://app.example.com/auth/done",
            "https://app.example.com/auth/"
        ));
        assert!(under(
            "https://app.example.com/auth",
            "https://app.example.com/auth"
        ));
        assert!(!under(
            "https://app.example.com.evil.test/",
            "https://app.example.com"
        ));
        assert!(!under(
            "https://app.example.com:444/",
            "https://app.example.com"
        ));
        assert!(!under("http://app.example.com/", "https://app.example.com"));
        assert!(!under(
            "https://app.example.com/authz",
            "https://app.example.com/auth"
        ));
        assert!(!under(
            "https://evil.test/?https://app.example.com",
            "https://app.example.com"
        ));
        for refused in [
            "",
            "/relative",
            "javascript:alert(1)",
            "https://user:pw@app.example.com/",
            "https://app.example.com/\nx",
        ] {
            assert!(RedirectTarget::parse(refused).is_err(), "{refused:?}");
        }
        assert!(RedirectTarget::parse(&format!("https://a.test/{}", "x".repeat(3000))).is_err());
    }

    #[test]
    fn a_callback_needs_a_state() {
        assert!(OidcCallback::parse(None, Some("c"), None).is_err());
        assert!(OidcCallback::parse(Some(""), Some("c"), None).is_err());
        let c = OidcCallback::parse(Some("s"), Some("c"), Some(&"e".repeat(500))).unwrap();
        assert_eq!(c.error.unwrap().len(), MAX_ERROR_CHARS);
        assert!(ExchangeCode::parse(&"x".repeat(300)).is_err());
        assert!(ExchangeCode::parse(" ").is_err());
    }
}
