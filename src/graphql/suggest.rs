//! "Did you mean …?" for unknown fields and types. async-graphql suggests argument names
//! only; these hints come from the schema's own SDL, read once, and are added to the
//! validation errors of `/graphql` (unless `GRAPHQL_SUGGESTIONS=false`).

use std::collections::HashMap;

use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

/// The names a hint can point to: every type, and each object type's fields.
pub struct Suggestions {
    types: Vec<String>,
    fields: HashMap<String, Vec<String>>,
}

impl Suggestions {
    /// Reads the names from the schema's SDL.
    pub fn from_sdl(sdl: &str) -> Self {
        let mut types = Vec::new();
        let mut fields = HashMap::new();
        let document = async_graphql::parser::parse_schema(sdl).expect("our own SDL parses");
        for definition in document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let name = ty.node.name.node.to_string();
            let own: Option<Vec<String>> = match &ty.node.kind {
                TypeKind::Object(object) => Some(
                    object
                        .fields
                        .iter()
                        .map(|f| f.node.name.node.to_string())
                        .collect(),
                ),
                TypeKind::Interface(interface) => Some(
                    interface
                        .fields
                        .iter()
                        .map(|f| f.node.name.node.to_string())
                        .collect(),
                ),
                _ => None,
            };
            if let Some(own) = own {
                fields.insert(name.clone(), own);
            }
            types.push(name);
        }
        Self { types, fields }
    }

    /// The message with a hint added, when it names an unknown field or type that is close to
    /// a known one.
    pub fn hint(&self, message: &str) -> Option<String> {
        let quoted = |text: &str| -> Vec<String> {
            text.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        };
        let hint = if let Some(rest) = message.strip_prefix("Unknown field ") {
            let names = quoted(rest);
            let (field, ty) = (names.first()?, names.get(1)?);
            closest(field, self.fields.get(ty)?)
        } else if let Some(rest) = message.strip_prefix("Unknown type ") {
            closest(quoted(rest).first()?, &self.types)
        } else {
            None
        }?;
        Some(format!(
            "{} Did you mean \"{hint}\"?",
            message.trim_end_matches('.').to_owned() + "."
        ))
    }
}

/// The closest name, if it is close enough to be what was meant.
fn closest<'a>(input: &str, options: &'a [String]) -> Option<&'a str> {
    options
        .iter()
        .map(|option| (distance(input, option), option))
        .filter(|(d, option)| *d <= (input.len() / 2).max(option.len() / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, option)| option.as_str())
}

/// Levenshtein distance, case-insensitive (a wrong case is the commonest slip).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_types_get_the_closest_name() {
        let hints = Suggestions::from_sdl(&crate::graphql::sdl());
        assert_eq!(
            hints
                .hint("Unknown field \"emial\" on type \"User\".")
                .as_deref(),
            Some("Unknown field \"emial\" on type \"User\". Did you mean \"email\"?")
        );
        assert_eq!(
            hints
                .hint("Unknown field \"mee\" on type \"Query\".")
                .as_deref(),
            Some("Unknown field \"mee\" on type \"Query\". Did you mean \"me\"?")
        );
        assert_eq!(
            hints.hint("Unknown type \"Userr\"").as_deref(),
            Some("Unknown type \"Userr\". Did you mean \"User\"?")
        );
        assert_eq!(
            hints.hint("Unknown field \"zzzzzz\" on type \"User\"."),
            None
        );
        assert_eq!(hints.hint("Fragment \"F\" is never used"), None);
    }
}
