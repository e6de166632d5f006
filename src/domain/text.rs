/// One field of a partial update as a client sent it: left out, `null`, or a value. Each
/// transport reads its own representation into this.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Given<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

/// What a partial update says about one field: leave it, clear it, or set it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// `Keep` when absent, `Clear` for `null`, else the converted value.
    pub fn from_input<R, E>(
        input: Given<R>,
        convert: impl FnOnce(R) -> Result<Option<T>, E>,
    ) -> Result<Self, E> {
        Ok(match input {
            Given::Absent => Self::Keep,
            Given::Null => Self::Clear,
            Given::Value(v) => match convert(v)? {
                Some(v) => Self::Set(v),
                None => Self::Clear,
            },
        })
    }

    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }

    /// `None` to leave the value alone, else the new (possibly absent) value.
    pub fn into_change(self) -> Option<Option<T>> {
        match self {
            Self::Keep => None,
            Self::Clear => Some(None),
            Self::Set(v) => Some(Some(v)),
        }
    }

    /// Applies the patch to a nullable column value.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(v) => Some(v),
        }
    }
}

/// Trims free text and checks its length in characters, then its characters: no control
/// characters (tab and newline only where `multiline`). Empty text means "no value".
pub fn bounded_text(
    label: &str,
    raw: &str,
    max_chars: usize,
    multiline: bool,
) -> Result<Option<String>, String> {
    let text = raw.trim();
    if text.chars().nth(max_chars).is_some() {
        return Err(format!("{label} must be at most {max_chars} characters."));
    }
    no_control(label, text, multiline)?;
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Refuses U+0000–U+001F and U+007F (tab, newline and carriage return too, unless
/// `multiline`): they have no place in what a person types, and PostgreSQL refuses NUL in
/// text outright.
pub fn no_control(label: &str, text: &str, multiline: bool) -> Result<(), String> {
    let refused =
        |c: char| (c.is_ascii_control()) && !(multiline && matches!(c, '\t' | '\n' | '\r'));
    if text.chars().any(refused) {
        return Err(format!("{label} must not contain control characters."));
    }
    Ok(())
}

/// A display name: at most 100 characters, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;

    /// `Ok(None)` for blank input: a blank name is no name.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        Ok(bounded_text("Name", raw, Self::MAX_CHARS, false)?.map(Self))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_limited_to_100_characters() {
        assert_eq!(
            Name::parse("  Alice ").unwrap().unwrap().into_inner(),
            "Alice"
        );
        assert_eq!(Name::parse("   ").unwrap(), None);
        assert!(Name::parse(&"é".repeat(100)).unwrap().is_some());
        assert_eq!(
            Name::parse(&"a".repeat(101)).unwrap_err(),
            "Name must be at most 100 characters."
        );
    }

    #[test]
    fn control_characters_are_refused_except_line_breaks_where_lines_are_allowed() {
        for bad in ["a\0b", "a\u{7f}", "tab\there", "line\nbreak", "\u{1b}[31m"] {
            assert_eq!(
                Name::parse(bad).unwrap_err(),
                "Name must not contain control characters.",
                "{bad:?}"
            );
        }
        assert!(bounded_text("Bio", "two\nlines\tand a tab", 100, true).is_ok());
        assert!(bounded_text("Bio", "nul\0", 100, true).is_err());
        // Other Unicode is text like any other.
        assert!(Name::parse("Zoë 李 🙂").unwrap().is_some());
    }

    #[test]
    fn patches_keep_clear_or_set() {
        assert_eq!(Patch::<u8>::Keep.apply(Some(1)), Some(1));
        assert_eq!(Patch::<u8>::Clear.apply(Some(1)), None);
        assert_eq!(Patch::Set(2).apply(Some(1)), Some(2));
    }
}
