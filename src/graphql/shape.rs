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
            let fields = count_fields(&op.node.selection_set.node, &doc.fragments, 0);
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

/// Fields at this level, looking through fragments (to a bounded depth: cycles are invalid
/// and refused by validation later, but must not loop here).
fn count_fields(
    set: &SelectionSet,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
    depth: usize,
) -> usize {
    if depth > 8 {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(fragment) => {
                count_fields(&fragment.node.selection_set.node, fragments, depth + 1)
            }
            Selection::FragmentSpread(spread) => fragments
                .get(&spread.node.fragment_name.node)
                .map_or(0, |f| {
                    count_fields(&f.node.selection_set.node, fragments, depth + 1)
                }),
        })
        .sum()
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
}
