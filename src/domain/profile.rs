use super::{Checks, Given, Patch, text::bounded_text};
use crate::error::AppError;

pub const MAX_SHORT_TEXT: usize = 100;
pub const MAX_BIO: usize = 1000;
pub const PHONE_FORMAT: &str = "Invalid phone format; expected +<country_code><number>";

/// Declares the editable profile fields once: [`ProfileFields`], one `T` per field, and its
/// walks in declaration order (the order errors are reported in).
macro_rules! profile_fields {
    ($($field:ident),+ $(,)?) => {
        /// One `T` per editable profile field: the raw input (`ProfileFields<Given<String>>`,
        /// as either API received it) or the validated changes ([`ProfilePatch`]).
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct ProfileFields<T> {
            $(pub $field: T,)+
        }

        impl<T> ProfileFields<T> {
            /// Each field through `f`, with its name.
            pub fn map<U>(self, mut f: impl FnMut(&'static str, T) -> U) -> ProfileFields<U> {
                ProfileFields { $($field: f(stringify!($field), self.$field),)+ }
            }

            /// The fields with their names.
            pub fn into_entries(self) -> Vec<(&'static str, T)> {
                vec![$((stringify!($field), self.$field),)+]
            }
        }

        impl<T> ProfileFields<Option<T>> {
            /// All the fields, or `None` if one is missing.
            fn transpose(self) -> Option<ProfileFields<T>> {
                Some(ProfileFields { $($field: self.$field?,)+ })
            }
        }
    };
}

// A plain text field needs only its name here (and its column): its rule is `rule`'s
// default, a line of at most `MAX_SHORT_TEXT` characters.
profile_fields!(name, phone, bio, hobby, occupation, location);

/// Validated changes to a profile; on creation `Keep` and `Clear` both mean "no value".
pub type ProfilePatch = ProfileFields<Patch<String>>;

impl ProfilePatch {
    pub fn parse(fields: ProfileFields<Given<String>>) -> Result<Self, AppError> {
        let mut checks = Checks::default();
        let patch = fields.map(|field, input| {
            checks.check(field, Patch::from_input(input, |raw| rule(field, &raw)))
        });
        checks.finish(|| patch.transpose())
    }
}

/// A field's rule: the phone's format; else free text of at most `MAX_SHORT_TEXT`
/// characters on one line, and only the bio has lines (and up to `MAX_BIO`).
fn rule(field: &str, raw: &str) -> Result<Option<String>, String> {
    match field {
        "phone" => phone(raw),
        "bio" => bounded_text(&label(field), raw, MAX_BIO, true),
        _ => bounded_text(&label(field), raw, MAX_SHORT_TEXT, false),
    }
}

/// A field's name as the messages say it: `occupation` → `Occupation`, `favorite_color` →
/// `Favorite color`.
fn label(field: &str) -> String {
    let mut chars = field.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect::<String>())
        .unwrap_or_default()
        .replace('_', " ")
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
    fn labels_are_the_field_names_as_words() {
        assert_eq!(label("occupation"), "Occupation");
        assert_eq!(label("favorite_color"), "Favorite color");
    }

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
