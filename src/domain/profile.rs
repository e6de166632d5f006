use super::{Checks, Given, Patch, text::bounded_text};
use crate::error::AppError;

pub const MAX_SHORT_TEXT: usize = 100;
pub const MAX_BIO: usize = 1000;
pub const PHONE_FORMAT: &str = "Invalid phone format; expected +<country_code><number>";

/// The raw profile fields as either API received them: absent, `null`, or a string.
#[derive(Default)]
pub struct ProfileFields {
    pub name: Given<String>,
    pub phone: Given<String>,
    pub bio: Given<String>,
    pub hobby: Given<String>,
    pub occupation: Given<String>,
    pub location: Given<String>,
}

/// Validated changes to a profile; on creation `Keep` and `Clear` both mean "no value".
#[derive(Debug, Default)]
pub struct ProfilePatch {
    pub name: Patch<String>,
    pub phone: Patch<String>,
    pub bio: Patch<String>,
    pub hobby: Patch<String>,
    pub occupation: Patch<String>,
    pub location: Patch<String>,
}

impl ProfilePatch {
    pub fn parse(fields: ProfileFields) -> Result<Self, AppError> {
        /// One text field's rule: at most `max` characters, lines only where `multiline`.
        fn text(
            checks: &mut Checks,
            (field, label, max, multiline): (&str, &str, usize, bool),
            input: Given<String>,
        ) -> Option<Patch<String>> {
            checks.check(
                field,
                Patch::from_input(input, |raw| bounded_text(label, &raw, max, multiline)),
            )
        }
        /// A one-line field of at most [`MAX_SHORT_TEXT`] characters.
        fn short<'a>(field: &'a str, label: &'a str) -> (&'a str, &'a str, usize, bool) {
            (field, label, MAX_SHORT_TEXT, false)
        }
        let mut checks = Checks::default();
        let c = &mut checks;
        let name = text(c, short("name", "Name"), fields.name);
        let phone = c.check("phone", Patch::from_input(fields.phone, |raw| phone(&raw)));
        // Only the bio has lines.
        let bio = text(c, ("bio", "Bio", MAX_BIO, true), fields.bio);
        let hobby = text(c, short("hobby", "Hobby"), fields.hobby);
        let occupation = text(c, short("occupation", "Occupation"), fields.occupation);
        let location = text(c, short("location", "Location"), fields.location);
        checks.finish(|| {
            Some(Self {
                name: name?,
                phone: phone?,
                bio: bio?,
                hobby: hobby?,
                occupation: occupation?,
                location: location?,
            })
        })
    }
}

/// `+`, then 7 to 15 digits (country code and number, E.164 length). Blank means no phone.
fn phone(raw: &str) -> Result<Option<String>, String> {
    let phone = raw.trim();
    if phone.is_empty() {
        return Ok(None);
    }
    let digits = phone.strip_prefix('+').unwrap_or_default();
    let valid = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    valid
        .then(|| Some(phone.to_owned()))
        .ok_or_else(|| PHONE_FORMAT.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Patch;

    #[test]
    fn phones_are_plus_and_7_to_15_digits() {
        for good in ["+100200300", "+1234567", "+123456789012345"] {
            assert_eq!(phone(good).unwrap().as_deref(), Some(good));
        }
        for bad in [
            "100200300",
            "+123456",
            "+1234567890123456",
            "+1 234 567 89",
            "+12345a78",
            "+",
        ] {
            assert_eq!(phone(bad).unwrap_err(), PHONE_FORMAT, "{bad}");
        }
        assert_eq!(phone("  ").unwrap(), None);
    }

    #[test]
    fn absent_fields_are_kept_nulls_cleared_and_limits_checked() {
        let patch = ProfilePatch::parse(ProfileFields {
            bio: Given::Value(" Hello ".into()),
            location: Given::Null,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(patch.bio, Patch::Set("Hello".into()));
        assert_eq!(patch.location, Patch::Clear);
        assert_eq!(patch.name, Patch::Keep);

        let err = ProfilePatch::parse(ProfileFields {
            bio: Given::Value("b".repeat(1001)),
            phone: Given::Value("12".into()),
            hobby: Given::Value("h".repeat(101)),
            ..Default::default()
        })
        .unwrap_err();
        let AppError::Validation(errors) = err else {
            panic!("validation expected")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["phone", "bio", "hobby"]);
        assert_eq!(errors[1].message, "Bio must be at most 1000 characters.");
    }
}
