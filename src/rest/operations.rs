//! The fixed GraphQL operations behind the REST paths, parsed once at start-up.
//!
//! Each selects its root field as `result`, and aliases camelCase fields to the snake_case
//! keys of the REST contract, so the REST body is `data.result` as it stands.

use async_graphql::{Request, parser::types::ExecutableDocument};

const ACCOUNT_FIELDS: &str = "id email name created_at: createdAt updated_at: updatedAt";

pub struct Operation {
    source: String,
    document: ExecutableDocument,
}

impl Operation {
    fn parse(source: String) -> Self {
        let document = async_graphql::parser::parse_query(&source)
            .unwrap_or_else(|e| panic!("REST operation does not parse: {e}\n{source}"));
        Self { source, document }
    }

    /// A request for this operation that skips parsing.
    pub fn request(&self) -> Request {
        let mut request = Request::new(self.source.as_str());
        request.set_parsed_query(self.document.clone());
        request
    }
}

pub struct Operations {
    pub register: Operation,
    pub login: Operation,
    pub account: Operation,
    pub update_account: Operation,
}

impl Operations {
    pub fn new() -> Self {
        Self {
            register: Operation::parse(
                "mutation Register($input: RegisterInput!) { \
                   result: register(input: $input) { id email created_at: createdAt } }"
                    .into(),
            ),
            login: Operation::parse(
                "mutation Login($input: LoginInput!) { result: login(input: $input) { \
                   access_token: accessToken token_type: tokenType expires_in: expiresIn } }"
                    .into(),
            ),
            account: Operation::parse(format!(
                "query Account {{ result: me {{ {ACCOUNT_FIELDS} }} }}"
            )),
            update_account: Operation::parse(format!(
                "mutation UpdateAccount($input: UpdateMeInput!) {{ \
                   result: updateMe(input: $input) {{ {ACCOUNT_FIELDS} }} }}"
            )),
        }
    }
}

impl Default for Operations {
    fn default() -> Self {
        Self::new()
    }
}
