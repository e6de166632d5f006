//! DataLoaders: fields that would cost a query per parent are batched into one.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::{
    error::AppError,
    services::{ProfileView, Services},
};

/// Profiles by owner id, for `User.profile`.
pub struct ProfileLoader(pub Services);

impl Loader<i32> for ProfileLoader {
    type Value = ProfileView;
    type Error = AppError;

    async fn load(&self, user_ids: &[i32]) -> Result<HashMap<i32, ProfileView>, AppError> {
        self.0.profiles_by_user(user_ids).await
    }
}
