//! Limits on the shape of a document, checked before it executes, beyond async-graphql's
//! depth and complexity limits: aliases let one document repeat a costly field (`login`
//! hundreds of times), so they are capped, and so are the root fields of a mutation.

use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};
use std::collections::HashMap;

/// Most field selections in one document (GraphiQL's introspection query has about 100).
/// Checked first: validation compares fields pairwise, so a very wide document would cost
/// time before the complexity limit refuses it.
pub const MAX_FIELDS: usize = 1000;
/// Most aliases in one document.
pub const MAX_ALIASES: usize = 30;
/// Most root fields in one mutation (each is run in turn).
pub const MAX_MUTATION_FIELDS: usize = 10;

/// Why a document is refused, if it is.
pub fn check(doc: &ExecutableDocument) -> Result<(), String> {
    let fields: usize = selection_sets(doc).map(count_selections).sum();
    if fields > MAX_FIELDS {
        return Err(format!(
            "The document selects {fields} fields; at most {MAX_FIELDS} are allowed"
        ));
    }
    let aliases: usize = selection_sets(doc).map(count_aliases).sum();
    if aliases > MAX_ALIASES {
        return Err(format!(
            "The document uses {aliases} aliases; at most {MAX_ALIASES} are allowed"
        ));
    }
    for (_, op) in doc.operations.iter() {
        if op.node.ty == OperationType::Mutation {
            let fields = RootFields::new(&doc.fragments).count(&op.node.selection_set.node);
            if fields > MAX_MUTATION_FIELDS {
                return Err(format!(
                    "A mutation may have at most {MAX_MUTATION_FIELDS} root fields"
                ));
            }
        }
    }
    Ok(())
}

fn selection_sets(doc: &ExecutableDocument) -> impl Iterator<Item = &SelectionSet> {
    doc.operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(doc.fragments.values().map(|f| &f.node.selection_set.node))
}

/// Every field selection, at any depth (fragment spreads count where they are defined).
fn count_selections(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => 1 + count_selections(&field.node.selection_set.node),
            Selection::InlineFragment(fragment) => {
                count_selections(&fragment.node.selection_set.node)
            }
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Counts the fields at one level, looking through inline fragments and fragment spreads
/// however deeply they nest. Each fragment is counted once and remembered, so a document that
/// spreads fragments into each other many times costs no more than its size; a fragment that
/// spreads itself (invalid, refused by validation later) counts as empty here.
struct RootFields<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    counted: HashMap<&'a Name, usize>,
    in_progress: Vec<&'a Name>,
}

impl<'a> RootFields<'a> {
    fn new(fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>) -> Self {
        Self {
            fragments,
            counted: HashMap::new(),
            in_progress: Vec::new(),
        }
    }

    fn count(&mut self, set: &'a SelectionSet) -> usize {
        let mut total = 0usize;
        for item in &set.items {
            let fields = match &item.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(fragment) => {
                    self.count(&fragment.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            };
            total = total.saturating_add(fields);
        }
        total
    }

    fn fragment(&mut self, name: &'a Name) -> usize {
        if let Some(&known) = self.counted.get(name) {
            return known;
        }
        let Some(definition) = self.fragments.get(name) else {
            return 0;
        };
        if self.in_progress.contains(&name) {
            return 0;
        }
        self.in_progress.push(name);
        let fields = self.count(&definition.node.selection_set.node);
        self.in_progress.pop();
        self.counted.insert(name, fields);
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(source: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(source).unwrap()
    }

    #[test]
    fn very_wide_documents_are_refused() {
        let wide: String = (0..1001).map(|_| "id ").collect();
        assert!(
            check(&doc(&format!("{{ me {{ {wide} }} }}")))
                .unwrap_err()
                .contains("at most 1000")
        );
    }

    #[test]
    fn many_aliases_are_refused() {
        let logins: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
        assert!(check(&doc(&format!("{{ {logins} }}"))).is_err());
        let few: String = (0..30).map(|i| format!("a{i}: me {{ id }} ")).collect();
        assert!(check(&doc(&format!("{{ {few} }}"))).is_ok());
    }

    #[test]
    fn wide_mutations_are_refused_through_fragments_too() {
        let fields: String = (0..6)
            .map(|i| format!("l{i}: login(input: $i) {{ tokenType }} "))
            .collect();
        let source = format!(
            "mutation($i: LoginInput!) {{ ...A ... on Mutation {{ {fields} }} }} \
             fragment A on Mutation {{ {fields} }}"
        );
        assert!(check(&doc(&source)).unwrap_err().contains("root fields"));
        assert!(check(&doc("mutation { deleteProfile deleteProfilePhoto }")).is_ok());
    }

    #[test]
    fn root_fields_hidden_in_deeply_nested_fragments_still_count() {
        // 25 logins, the last behind a chain of twelve fragments.
        let logins: String = (0..25)
            .map(|i| format!("l{i}: login(input: $i) {{ tokenType }} "))
            .collect();
        let mut source = "mutation($i: LoginInput!) { ...F0 }".to_owned();
        for level in 0..12 {
            source.push_str(&format!(
                " fragment F{level} on Mutation {{ ...F{} }}",
                level + 1
            ));
        }
        source.push_str(&format!(" fragment F12 on Mutation {{ {logins} }}"));
        assert!(check(&doc(&source)).unwrap_err().contains("root fields"));
    }

    #[test]
    fn fragments_spread_many_times_are_counted_quickly() {
        // Each fragment spreads the next twice: 2^30 paths, 30 fragments.
        let mut source = "mutation { ...F0 }".to_owned();
        for level in 0..30 {
            source.push_str(&format!(
                " fragment F{level} on Mutation {{ ...F{next} ...F{next} }}",
                next = level + 1
            ));
        }
        source.push_str(" fragment F30 on Mutation { deleteProfile }");
        let started = std::time::Instant::now();
        assert!(check(&doc(&source)).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
