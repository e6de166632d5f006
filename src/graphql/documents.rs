//! Parsed GraphQL documents, kept by their text.
//!
//! Clients send the same few queries again and again (they are constants in client code), and
//! parsing one costs more than copying its parsed form. The cache is small and bounded: it
//! holds at most [`CAPACITY`] documents of at most [`MAX_QUERY_BYTES`] each, and when it is
//! full it is emptied and refills with the queries in use. A flood of distinct queries only
//! costs the parse it would have cost anyway. Only queries are kept: a mutation may carry a
//! password in its text, and none is worth keeping.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use async_graphql::{
    Request,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};

const CAPACITY: usize = 64;
const MAX_QUERY_BYTES: usize = 2048;

#[derive(Default)]
pub struct DocumentCache {
    documents: Mutex<HashMap<String, ExecutableDocument>>,
}

impl DocumentCache {
    /// Gives `request` its parsed document from the cache, or parses it and keeps the result.
    /// A document that does not parse is left for the executor to report.
    pub fn prepare(&self, request: &mut Request) {
        if request.query.len() > MAX_QUERY_BYTES {
            return;
        }
        if let Some(document) = self.lock().get(&request.query) {
            request.set_parsed_query(document.clone());
            return;
        }
        let Ok(document) = request.parsed_query() else {
            return;
        };
        if runs_mutation(document, None) {
            return;
        }
        let document = document.clone();
        let mut documents = self.lock();
        if documents.len() >= CAPACITY {
            documents.clear();
        }
        documents.insert(request.query.clone(), document);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecutableDocument>> {
        // The map is valid whatever a panicking holder was doing: entries are inserted whole.
        self.documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Would executing this document run a mutation? When the operation to run cannot be told
/// (several, none named), any mutation in the document counts.
pub(super) fn runs_mutation(doc: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    let is_mutation = |ty: OperationType| ty == OperationType::Mutation;
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => is_mutation(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .is_some_and(|(_, op)| is_mutation(op.node.ty)),
        (DocumentOperations::Multiple(ops), None) => ops.values().any(|op| is_mutation(op.node.ty)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(source: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(source).unwrap()
    }

    #[test]
    fn mutations_are_recognised_whichever_operation_runs() {
        assert!(runs_mutation(&doc("mutation { login }"), None));
        assert!(!runs_mutation(&doc("{ me { id } }"), None));
        let both = doc("query A { me { id } } mutation B { x }");
        assert!(!runs_mutation(&both, Some("A")));
        assert!(runs_mutation(&both, Some("B")));
        assert!(runs_mutation(&both, None));
    }

    #[test]
    fn a_repeated_query_is_served_from_the_cache() {
        let cache = DocumentCache::default();
        cache.prepare(&mut Request::new("{ me { id } }"));
        assert_eq!(cache.len(), 1);
        // Proof that the cache answers: a text that does not parse gets the document kept
        // for it.
        let kept = async_graphql::parser::parse_query("{ me { email } }").unwrap();
        cache.lock().insert("cached".into(), kept.clone());
        let mut request = Request::new("cached");
        cache.prepare(&mut request);
        assert_eq!(
            format!("{:?}", request.parsed_query().unwrap()),
            format!("{kept:?}")
        );
    }

    #[test]
    fn mutations_are_not_kept() {
        let cache = DocumentCache::default();
        let login =
            r#"mutation { login(input: {email: "a@b.co", password: "secret"}) { accessToken } }"#;
        let mut request = Request::new(login);
        cache.prepare(&mut request);
        assert!(request.parsed_query().is_ok());
        assert_eq!(cache.len(), 0);
        cache.prepare(&mut Request::new(
            "query A { me { id } } mutation B { logout }",
        ));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bad_and_oversized_queries_are_not_kept() {
        let cache = DocumentCache::default();
        let mut broken = Request::new("{ me { id }");
        cache.prepare(&mut broken);
        assert!(broken.parsed_query().is_err());
        let mut huge = Request::new(format!("{{ me {{ id }} }} #{}", "x".repeat(4096)));
        cache.prepare(&mut huge);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let cache = DocumentCache::default();
        for i in 0..CAPACITY * 3 {
            cache.prepare(&mut Request::new(format!("{{ a{i}: me {{ id }} }}")));
            assert!(cache.len() <= CAPACITY);
        }
    }
}
