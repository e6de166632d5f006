//! The fixed GraphQL operations behind the REST paths, parsed once at start-up.
//!
//! Each selects its root field as `result`, and aliases camelCase fields to the snake_case
//! keys of the REST contract, so the REST body is `data.result` as it stands.

use async_graphql::{Request, parser::types::ExecutableDocument};

const ACCOUNT_FIELDS: &str = "id email name created_at: createdAt updated_at: updatedAt";
/// ProfilePublic, in the documented key order.
/// ProfileOut: ProfilePublic with the owner's email after `user_id`.
const PROFILE_FIELDS: &str = "id user_id: userId email name phone bio hobby occupation \
    location profile_photo_path: profilePhotoPath created_at: createdAt updated_at: updatedAt";
const PUBLIC_PROFILE_FIELDS: &str = "id user_id: userId name phone bio hobby occupation \
    location profile_photo_path: profilePhotoPath created_at: createdAt updated_at: updatedAt";

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
    pub create_profile: Operation,
    pub my_profile: Operation,
    pub public_profile: Operation,
    pub update_profile: Operation,
    pub delete_profile: Operation,
    pub upload_photo: Operation,
    pub delete_photo: Operation,
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
            create_profile: Operation::parse(format!(
                "mutation CreateProfile($input: ProfileInput!) {{ \
                   result: createProfile(input: $input) {{ {PROFILE_FIELDS} }} }}"
            )),
            my_profile: Operation::parse(format!(
                "query MyProfile {{ result: myProfile {{ {PROFILE_FIELDS} }} }}"
            )),
            public_profile: Operation::parse(format!(
                "query PublicProfile($userId: Int!) {{ \
                   result: profile(userId: $userId) {{ {PUBLIC_PROFILE_FIELDS} }} }}"
            )),
            update_profile: Operation::parse(format!(
                "mutation UpdateProfile($input: ProfileInput!) {{ \
                   result: updateProfile(input: $input) {{ {PROFILE_FIELDS} }} }}"
            )),
            delete_profile: Operation::parse(
                "mutation DeleteProfile { result: deleteProfile }".into(),
            ),
            upload_photo: Operation::parse(format!(
                "mutation UploadPhoto($file: Upload!) {{ \
                   result: uploadProfilePhoto(file: $file) {{ {PROFILE_FIELDS} }} }}"
            )),
            delete_photo: Operation::parse(
                "mutation DeletePhoto { result: deleteProfilePhoto }".into(),
            ),
        }
    }
}

impl Default for Operations {
    fn default() -> Self {
        Self::new()
    }
}
