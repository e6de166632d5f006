//! Inputs of the webhook administration: an endpoint's URL, the event types it takes, and a
//! description.

use url::Url;

use super::{Checks, text::bounded_text};
use crate::error::AppError;

/// The event types, in the order the README lists them.
pub const WEBHOOK_EVENT_TYPES: [&str; 12] = [
    "user.created",
    "user.updated",
    "user.email_verified",
    "user.deleted",
    "user.disabled",
    "user.enabled",
    "user.role_changed",
    "session.created",
    "password.changed",
    "password.reset",
    "mfa.enabled",
    "mfa.disabled",
];
/// Longest receiver URL.
pub const MAX_WEBHOOK_URL_CHARS: usize = 2048;
/// Longest description.
pub const MAX_WEBHOOK_DESCRIPTION_CHARS: usize = 500;

/// A new endpoint: an absolute http(s) URL without credentials, at least one known event type
/// (or `*`), and an optional description. Whether the URL's address is allowed is the
/// service's to say (it resolves it).
#[derive(Debug)]
pub struct NewWebhook {
    pub url: Url,
    /// Deduplicated; `["*"]` for all.
    pub events: Vec<String>,
    pub description: Option<String>,
}

impl NewWebhook {
    pub fn parse(
        url: &str,
        events: &[String],
        description: Option<&str>,
    ) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let url = checks.check("url", receiver_url(url));
        let events = checks.check("events", event_types(events));
        let description = checks.check(
            "description",
            description
                .map(|d| bounded_text("Description", d, MAX_WEBHOOK_DESCRIPTION_CHARS, false))
                .transpose()
                .map(Option::flatten),
        );
        checks.finish(|| {
            Some(Self {
                url: url?,
                events: events?,
                description: description?,
            })
        })
    }
}

fn receiver_url(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("URL is required.".into());
    }
    if raw.chars().nth(MAX_WEBHOOK_URL_CHARS).is_some() || raw.chars().any(char::is_control) {
        return Err("URL is invalid.".into());
    }
    let url = Url::parse(raw).map_err(|_| "URL must be an absolute http(s) URL.".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("URL must be an absolute http(s) URL.".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URL must not carry credentials.".into());
    }
    Ok(url)
}

fn event_types(events: &[String]) -> Result<Vec<String>, String> {
    if events.is_empty() {
        return Err("At least one event type is required.".into());
    }
    if events.len() > WEBHOOK_EVENT_TYPES.len() + 1 {
        return Err("Too many event types.".into());
    }
    let mut chosen: Vec<String> = Vec::new();
    for event in events {
        let event = event.trim();
        if event != "*" && !WEBHOOK_EVENT_TYPES.contains(&event) {
            let shown: String = event.chars().take(64).collect();
            return Err(format!("Unknown event type: {shown}."));
        }
        if !chosen.iter().any(|c| c == event) {
            chosen.push(event.to_owned());
        }
    }
    if chosen.iter().any(|c| c == "*") {
        return Ok(vec!["*".to_owned()]);
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(list: &[&str]) -> Vec<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn endpoints_are_checked_field_by_field() {
        let ok = NewWebhook::parse(
            "https://hooks.example.com/in",
            &events(&["user.created", "user.created", "session.created"]),
            Some("CRM"),
        )
        .unwrap();
        assert_eq!(ok.events, ["user.created", "session.created"]);
        let all =
            NewWebhook::parse("http://h.test/", &events(&["user.created", "*"]), None).unwrap();
        assert_eq!(all.events, ["*"]);
        let AppError::Validation(errors) = NewWebhook::parse(
            "ftp://h.test/",
            &events(&["user.exploded"]),
            Some(&"x".repeat(501)),
        )
        .unwrap_err() else {
            panic!("a validation error");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "events", "description"]);
        for bad in [
            "",
            "/relative",
            "https://user:pw@h.test/",
            "javascript:alert(1)",
        ] {
            assert!(
                NewWebhook::parse(bad, &events(&["*"]), None).is_err(),
                "{bad}"
            );
        }
        assert!(NewWebhook::parse("https://h.test/", &[], None).is_err());
    }
}
