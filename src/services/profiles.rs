//! Profiles and their photos. Every write takes the owner from the caller's token; nothing in
//! a request body or path can point a write at another user's profile.

use std::{collections::HashMap, str::FromStr};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ModelTrait,
    QueryFilter, QuerySelect, Select, Set,
};
use tracing::instrument;

use super::{Account, Services, prepared, query::unique_violation_as, time::now};
use crate::{
    auth::{Actor, Bearer},
    db,
    domain::ProfilePatch,
    entities::{profile, user},
    error::AppError,
    services::photos::{self, ImageKind},
};

pub const PROFILE_NOT_FOUND: &str = "Profile not found";
pub const PROFILE_EXISTS: &str = "Profile already exists";
pub const BAD_SIZE: &str = "Size must be 64 or 256.";

/// A profile, and its owner's account when the caller is that owner (`None` for anyone
/// else, so another user's email never leaves the service).
#[derive(Clone, Debug)]
pub struct ProfileView {
    /// The stored row, as it is: a new column needs no edit here.
    pub profile: profile::Model,
    pub owner: Option<Account>,
}

impl ProfileView {
    /// The owner's view: the profile and its account.
    fn owned(profile: profile::Model, user: user::Model) -> Self {
        let owner = Account::named(user, profile.name.clone());
        Self::new(profile, Some(owner))
    }

    fn new(profile: profile::Model, owner: Option<Account>) -> Self {
        Self { profile, owner }
    }
}

impl Services {
    /// The caller's own profile.
    pub async fn my_profile(&self, actor: &Actor) -> Result<ProfileView, AppError> {
        let bearer = actor.bearer()?;
        // One query on the common path (profile, user and live session); telling 401 from
        // 404 needs a second only when there is no row.
        match prepared::profile(&self.pool(), bearer, now()).await? {
            Some((profile, user)) => Ok(ProfileView::owned(profile, user)),
            None => {
                self.signed_in(&self.pool(), bearer).await?;
                Err(AppError::NotFound(PROFILE_NOT_FOUND))
            }
        }
    }

    /// Anyone's profile, for a signed-in caller; the owner's account (and so the email)
    /// only when the caller is the owner.
    pub async fn profile_of(&self, actor: &Actor, user_id: i32) -> Result<ProfileView, AppError> {
        let bearer = actor.bearer()?;
        let caller = bearer.user_id;
        self.signed_in(&self.pool(), bearer).await?;
        let (profile, owner) = profile::Entity::find()
            .filter(profile::Column::UserId.eq(user_id))
            .find_also_related(user::Entity)
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound(PROFILE_NOT_FOUND))?;
        Ok(match owner {
            Some(owner) if owner.id == caller => ProfileView::owned(profile, owner),
            _ => ProfileView::new(profile, None),
        })
    }

    /// The profiles of several users at once (for GraphQL's `User.profile` loader).
    pub async fn profiles_by_user(
        &self,
        user_ids: &[i32],
    ) -> Result<HashMap<i32, ProfileView>, AppError> {
        let rows = profile::Entity::find()
            .filter(profile::Column::UserId.is_in(user_ids.iter().copied()))
            .find_also_related(user::Entity)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(p, u)| {
                let view = match u {
                    Some(u) => ProfileView::owned(p, u),
                    None => ProfileView::new(p, None),
                };
                (view.profile.user_id, view)
            })
            .collect())
    }

    /// Creates the caller's profile; 409 while one exists.
    #[instrument(skip_all)]
    pub async fn create_profile(
        &self,
        actor: &Actor,
        fields: ProfilePatch,
    ) -> Result<ProfileView, AppError> {
        let bearer = actor.bearer()?;
        let user_id = bearer.user_id;
        let now = now();
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        if user
            .find_related(profile::Entity)
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(AppError::Conflict(PROFILE_EXISTS));
        }
        // The columns `apply` leaves alone are left out of the insert: no value.
        let mut profile = profile::ActiveModel {
            user_id: Set(user_id),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        apply(fields, &mut profile);
        let profile = profile
            .insert(&txn)
            .await
            .map_err(unique_violation_as(AppError::Conflict(PROFILE_EXISTS)))?;
        let user = touch_if(&txn, user, profile.name.is_some(), now).await?;
        txn.commit().await?;
        Ok(ProfileView::owned(profile, user))
    }

    /// Applies a partial update to the caller's profile.
    #[instrument(skip_all)]
    pub async fn update_profile(
        &self,
        actor: &Actor,
        patch: ProfilePatch,
    ) -> Result<ProfileView, AppError> {
        let bearer = actor.bearer()?;
        let user_id = bearer.user_id;
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        let profile = find_profile(&txn, user_id).await?;
        let old_name = profile.name.clone();
        let mut active: profile::ActiveModel = profile.clone().into();
        let changed = apply(patch, &mut active);
        let now = now();
        let profile = if changed {
            active.updated_at = Set(now);
            active.update(&txn).await?
        } else {
            profile
        };
        let user = touch_if(&txn, user, profile.name != old_name, now).await?;
        txn.commit().await?;
        Ok(ProfileView::owned(profile, user))
    }

    /// Deletes the caller's profile and then its photo file; returns the deleted profile's id.
    #[instrument(skip_all)]
    pub async fn delete_profile(&self, actor: &Actor) -> Result<i32, AppError> {
        let bearer = actor.bearer()?;
        let user_id = bearer.user_id;
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        let profile = find_profile_for_update(&txn, user_id).await?;
        let (id, photo, named) = (
            profile.id,
            profile.profile_photo_path.clone(),
            profile.name.is_some(),
        );
        profile.delete(&txn).await?;
        // The account's name was the profile's: it changed if there was one.
        touch_if(&txn, user, named, now()).await?;
        txn.commit().await?;
        if let Some(photo) = photo {
            self.photos.remove(&photo).await;
        }
        Ok(id)
    }

    /// Replaces the caller's photo with `bytes` (checked, re-encoded, stored).
    #[instrument(skip_all, fields(bytes = bytes.len()))]
    pub async fn set_photo(&self, actor: &Actor, bytes: Vec<u8>) -> Result<ProfileView, AppError> {
        let user_id = actor.bearer()?.user_id;
        if bytes.len() > self.max_upload_bytes {
            return Err(AppError::file_too_large(self.max_upload_bytes));
        }
        // Fail early, before the image work, when there is nothing to attach it to.
        self.my_profile(actor).await?;
        let photo = self.photos.process(bytes).await?;
        let path = self.photos.save(user_id, photo).await?;
        match self.swap_photo(actor.bearer()?, Some(path.clone())).await {
            Ok((view, old)) => {
                if let Some(old) = old {
                    self.photos.remove(&old).await;
                }
                Ok(view)
            }
            Err(err) => {
                self.photos.remove(&path).await;
                Err(err)
            }
        }
    }

    /// Removes the caller's photo (and its file); fine when there is none.
    #[instrument(skip_all)]
    pub async fn delete_photo(&self, actor: &Actor) -> Result<ProfileView, AppError> {
        let (view, old) = self.swap_photo(actor.bearer()?, None).await?;
        if let Some(old) = old {
            self.photos.remove(&old).await;
        }
        Ok(view)
    }

    /// Sets the photo path in one write transaction, returning the new view and the path it
    /// replaced. The row is locked (or, on SQLite, the database), so two uploads at once each
    /// see the other's file as the one to remove: none is left behind.
    async fn swap_photo(
        &self,
        bearer: Bearer,
        path: Option<String>,
    ) -> Result<(ProfileView, Option<String>), AppError> {
        let txn = db::begin_write(&self.db).await?;
        let user = self.signed_in(&txn, bearer).await?;
        let profile = find_profile_for_update(&txn, bearer.user_id).await?;
        let old = profile.profile_photo_path.clone();
        let profile = if old == path {
            profile
        } else {
            let mut active: profile::ActiveModel = profile.into();
            active.profile_photo_path = Set(path);
            active.updated_at = Set(now());
            active.update(&txn).await?
        };
        txn.commit().await?;
        Ok((ProfileView::owned(profile, user), old))
    }

    /// A stored photo for `GET /uploads/{user_id}/{file}` (`size`: one of its square
    /// variants), if the names are ones the store makes and the user's profile references that
    /// photo. An object without a row (a crash between writing it and committing, a removal
    /// that failed) is never served; the sweep removes it. Its bytes are read apart
    /// ([`Services::photo_data`]), so that a client that has it costs the store nothing.
    pub async fn photo(
        &self,
        user_id: &str,
        file: &str,
        size: Option<u32>,
    ) -> Result<PhotoObject, AppError> {
        let not_found = || AppError::NotFound("Not Found");
        let size = variant_size(size)?;
        let Some(kind) = self.photos.locate(user_id, file) else {
            return Err(not_found());
        };
        let owner: i32 = user_id.parse().map_err(|_| not_found())?;
        let referenced = photo_path_of(&self.db, owner).await?;
        if referenced.as_deref() != Some(photos::public_path(owner, file).as_str()) {
            return Err(not_found());
        }
        Ok(match size {
            Some(size) => PhotoObject {
                owner,
                kind: ImageKind::WebP,
                name: photos::variant_file(photos::stem_of(file), size),
            },
            None => PhotoObject {
                owner,
                kind,
                name: file.to_owned(),
            },
        })
    }

    /// The bytes of a photo [`Services::photo`] found, whole or in chunks (404 if the object
    /// is gone).
    pub async fn photo_data(&self, photo: &PhotoObject) -> Result<photos::PhotoData, AppError> {
        self.photos
            .get(photo.owner, &photo.name)
            .await?
            .ok_or(AppError::NotFound("Not Found"))
    }

    /// Where a photo (or its `size` variant) is served: `{PUBLIC_URL}/uploads/…[?size=…]`.
    pub fn photo_url(&self, path: &str, size: Option<u32>) -> Result<String, AppError> {
        let base = &self.mail.public_url;
        Ok(match variant_size(size)? {
            None => format!("{base}/{path}"),
            Some(size) => format!("{base}/{path}?size={size}"),
        })
    }

    /// Removes photo files that no profile references, older than `grace` (younger ones may
    /// belong to an upload whose row is not committed yet), and temporary files a crash left.
    /// Returns how many files it removed.
    pub async fn sweep_photos(&self, grace: std::time::Duration) -> Result<usize, AppError> {
        let mut removed = self.photos.remove_abandoned_writes(grace).await;
        for (user_id, files) in self.photos.stored(grace).await? {
            let referenced = photo_path_of(&self.db, user_id).await?;
            // The stem of the referenced photo: the photo and its variants stay.
            let kept = referenced
                .as_deref()
                .and_then(|path| path.rsplit('/').next())
                .map(photos::stem_of);
            for file in files {
                if kept != Some(photos::stem_of(&file)) {
                    self.photos.remove_stored(user_id, &file).await;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed photo files that no profile references");
        }
        Ok(removed)
    }
}

/// A requested variant size: none, or one of [`photos::VARIANT_SIZES`] (else a 400 on `size`).
fn variant_size(size: Option<u32>) -> Result<Option<u32>, AppError> {
    match size {
        Some(size) if !photos::VARIANT_SIZES.contains(&size) => {
            Err(AppError::validation("size", BAD_SIZE))
        }
        size => Ok(size),
    }
}

/// A stored object that may be served: its owner, type and name (a new photo gets a new name,
/// so the name is a fine ETag).
pub struct PhotoObject {
    owner: i32,
    pub kind: ImageKind,
    pub name: String,
}

fn by_user(user_id: i32) -> Select<profile::Entity> {
    profile::Entity::find().filter(profile::Column::UserId.eq(user_id))
}

/// Writes what `patch` changes into `profile` (a new one, or a row to update): each field
/// into the column of its name. True when it changed any.
fn apply(patch: ProfilePatch, profile: &mut profile::ActiveModel) -> bool {
    let mut changed = false;
    for (field, change) in patch.into_entries() {
        if let Some(value) = change.into_change() {
            let column = profile::Column::from_str(field).expect("a profile field is a column");
            profile.set(column, value.into());
            changed = true;
        }
    }
    changed
}

/// Moves the account's `updated_at` when `changed`: the account's `name` lives on the
/// profile, and a client that caches the account must see that it changed.
async fn touch_if(
    db: &impl ConnectionTrait,
    user: user::Model,
    changed: bool,
    now: chrono::DateTime<Utc>,
) -> Result<user::Model, AppError> {
    if !changed {
        return Ok(user);
    }
    let mut active: user::ActiveModel = user.into();
    active.updated_at = Set(now);
    Ok(active.update(db).await?)
}

/// The photo path the user's profile references, if any.
async fn photo_path_of(
    db: &impl ConnectionTrait,
    user_id: i32,
) -> Result<Option<String>, AppError> {
    Ok(by_user(user_id)
        .select_only()
        .column(profile::Column::ProfilePhotoPath)
        .into_tuple::<Option<String>>()
        .one(db)
        .await?
        .flatten())
}

async fn find_profile(db: &impl ConnectionTrait, user_id: i32) -> Result<profile::Model, AppError> {
    by_user(user_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound(PROFILE_NOT_FOUND))
}

/// As `find_profile`, holding the row until the transaction ends. SQLite has no row locks
/// (and no `FOR UPDATE`); there the `BEGIN IMMEDIATE` of the transaction already serialises.
async fn find_profile_for_update(
    db: &impl ConnectionTrait,
    user_id: i32,
) -> Result<profile::Model, AppError> {
    let select = match db.get_database_backend() {
        DbBackend::Postgres => by_user(user_id).lock_exclusive(),
        _ => by_user(user_id),
    };
    select
        .one(db)
        .await?
        .ok_or(AppError::NotFound(PROFILE_NOT_FOUND))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use crate::{domain::ProfileFields, entities::profile};

    /// `apply` writes each field into the column of its name: every field has one.
    #[test]
    fn every_profile_field_is_a_column() {
        for (field, ()) in ProfileFields::<()>::default().into_entries() {
            assert!(
                profile::Column::from_str(field).is_ok(),
                "the profile field `{field}` has no column"
            );
        }
    }
}
