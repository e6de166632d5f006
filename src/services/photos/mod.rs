//! Profile photos: recognised by content, decoded within limits, re-encoded (which drops EXIF
//! and every other piece of metadata, GPS positions included), and stored under a name the
//! server chooses.
//!
//! Stored objects always match what the database references: a new photo (and its
//! variants) is written before the row changes and removed again if the change fails; the
//! photo a change replaced is removed after it commits. Removal errors are logged, never
//! returned; the sweep removes what a failure or a crash left behind. A store that fails a
//! write or a read is a 503.

// The store's guard (places, time, breaker) and the image work (decode, budget, variants)
// live in their own files; this one is the store adapter and the naming of objects.
mod guard;
mod processing;

use secrecy::ExposeSecret;
use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use image::ImageFormat;
use object_store::{
    Attribute, ObjectStore, ObjectStoreExt, PutOptions, local::LocalFileSystem,
    path::Path as ObjectPath,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{config::Secret, error::AppError};
use guard::StoreGuard;
pub use processing::{
    MAX_DECODE_BYTES, MAX_PIPELINE_BYTES, MAX_SIDE, Processed, VARIANT_SIZES, process,
};

/// The URL prefix of stored photos (`GET /uploads/...`), whatever `UPLOAD_DIR` is.
pub const PUBLIC_PREFIX: &str = "uploads";

/// The image types accepted, each re-encoded as itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    WebP,
}

impl ImageKind {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
        }
    }

    pub fn from_extension(ext: &str) -> Option<Self> {
        [Self::Jpeg, Self::Png, Self::WebP]
            .into_iter()
            .find(|kind| kind.extension() == ext)
    }

    fn format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::WebP => ImageFormat::WebP,
        }
    }
}

/// Opens a local photo: read whole when small, else a stream of chunks.
fn open_local(path: &std::path::Path) -> std::io::Result<PhotoData> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len <= READ_WHOLE {
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)?;
        return Ok(PhotoData::whole(bytes));
    }
    let chunks =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), CHUNK);
    Ok(PhotoData {
        len: Some(len),
        chunks: chunks.boxed(),
    })
}

/// The public path of a stored file: `uploads/{user_id}/{file}`.
pub fn public_path(user_id: i32, file: &str) -> String {
    format!("{PUBLIC_PREFIX}/{user_id}/{file}")
}

/// Where photos are kept: local files (`file://…`, the default: `UPLOAD_DIR`) or an S3
/// bucket (`s3://bucket[/prefix]`, with the standard `AWS_*` variables), through the
/// `object_store` crate. Objects are `{user_id}/{uuid}.{ext}` and its variants
/// `{user_id}/{uuid}-{size}.webp`.
pub struct PhotoStore {
    store: Arc<dyn ObjectStore>,
    /// The folder of a local store: a deleted user's emptied folder goes too.
    local_root: Option<PathBuf>,
    /// `file://…` or `s3://…` (with its endpoint), for the start-up log line.
    description: String,
    /// Decoding and encoding are CPU-bound; at most one per core at a time.
    permits: Semaphore,
    /// Every call to the store goes through it.
    guard: StoreGuard,
}

/// A photo's bytes as they come from the store: whole when small, else in chunks, so that a
/// reader that reads slowly holds one chunk, not the photo.
pub struct PhotoData {
    /// The size, when the store tells it.
    pub len: Option<u64>,
    pub chunks: futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>,
}

impl PhotoData {
    fn whole(bytes: Vec<u8>) -> Self {
        let len = bytes.len() as u64;
        let bytes = Bytes::from(bytes);
        Self {
            len: Some(len),
            chunks: futures_util::stream::once(async { Ok(bytes) }).boxed(),
        }
    }
}

/// Local photos up to this size are read in one go, one blocking call (the variants, most
/// photos); larger ones are streamed in chunks of [`CHUNK`], one blocking call each. So a
/// reader that stops reading holds at most this much (until the write timeout).
const READ_WHOLE: u64 = 512 * 1024;
const CHUNK: usize = 128 * 1024;

/// How long one request to the store may take before it counts as failed (a store that
/// does not answer must give a quick 503, not hold the upload).
const STORE_TIMEOUT: &str = "10 seconds";
const STORE_CONNECT_TIMEOUT: &str = "2 seconds";
/// `PHOTO_STORE_CONCURRENCY`'s default.
const DEFAULT_CONCURRENCY: usize = 16;

impl PhotoStore {
    /// The store `PHOTO_STORE` names (`None`: local files in `upload_dir`); an S3 store is
    /// configured by the `aws` variables.
    pub fn new(
        photo_store: Option<&str>,
        upload_dir: &std::path::Path,
        aws: &[(&str, Secret)],
    ) -> Result<Self, String> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let permits = Semaphore::new(cores);
        let spec = photo_store.map(str::trim).filter(|s| !s.is_empty());
        let dir = match spec {
            Some(url) if url.starts_with("s3://") => None,
            Some(url) => Some(std::path::Path::new(
                url.strip_prefix("file://")
                    .ok_or_else(|| format!("PHOTO_STORE must be file://… or s3://…, not {url}"))?,
            )),
            None => Some(upload_dir),
        };
        let (store, local_root, description): (Arc<dyn ObjectStore>, _, String) = match (dir, spec)
        {
            (Some(dir), _) => (
                Arc::new(local(dir)?),
                Some(dir.to_path_buf()),
                format!("file://{}", dir.display()),
            ),
            (None, spec) => {
                let url = spec.unwrap_or_default();
                let endpoint = aws
                    .iter()
                    .find(|(name, _)| *name == "AWS_ENDPOINT")
                    .map_or(String::new(), |(_, value)| {
                        format!(" at {}", value.expose_secret())
                    });
                (s3(url, aws)?, None, format!("{url}{endpoint}"))
            }
        };
        Ok(Self {
            store,
            local_root,
            description,
            permits,
            guard: StoreGuard::new(DEFAULT_CONCURRENCY),
        })
    }

    /// The same store, with at most `calls` calls to it at once (`PHOTO_STORE_CONCURRENCY`).
    pub fn with_concurrency(mut self, calls: usize) -> Self {
        self.guard = StoreGuard::new(calls);
        self
    }

    /// The store, for the start-up log line (no credentials in it).
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// [`process`] on the blocking pool.
    pub async fn process(&self, bytes: Vec<u8>) -> Result<Processed, AppError> {
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || process(&bytes))
            .await
            .map_err(AppError::internal)?
    }

    /// Stores a new photo and its variants under a new name; returns its public path
    /// `uploads/{user_id}/{uuid}.{ext}`. Each object is written whole or not at all; when one
    /// fails, those written are removed again and the answer is a 503.
    pub async fn save(&self, user_id: i32, photo: Processed) -> Result<String, AppError> {
        let stem = Uuid::new_v4().to_string();
        let file = format!("{stem}.{}", photo.kind.extension());
        let mut objects = vec![(key(user_id, &file), photo.bytes, photo.kind)];
        for (size, bytes) in photo.variants {
            let location = key(user_id, &variant_file(&stem, size));
            objects.push((location, bytes, ImageKind::WebP));
        }
        let mut written = Vec::new();
        for (location, bytes, kind) in objects {
            let options = self.put_options(kind);
            let put = self
                .guard
                .run(
                    |_| true,
                    self.store.put_opts(&location, bytes.into(), options),
                )
                .await
                .and_then(|put| put.map_err(unavailable));
            if let Err(e) = put {
                for location in written {
                    self.delete(&location).await;
                }
                return Err(e);
            }
            written.push(location);
        }
        Ok(public_path(user_id, &file))
    }

    /// How an object of `kind` is written: on S3 with its `Content-Type` (a bucket served
    /// straight to browsers, or a CDN in front of it, needs it); local files have no such
    /// attribute (the service sets the type when it serves them).
    fn put_options(&self, kind: ImageKind) -> PutOptions {
        let mut options = PutOptions::default();
        if self.local_root.is_none() {
            options
                .attributes
                .insert(Attribute::ContentType, kind.content_type().into());
        }
        options
    }

    /// The bytes of `{user_id}/{file}`, whole or in chunks; `None` when there is no such
    /// object.
    pub async fn get(&self, user_id: i32, file: &str) -> Result<Option<PhotoData>, AppError> {
        if let Some(root) = &self.local_root {
            // One blocking call opens, measures and (for a small file) reads, where the local
            // store's `get` takes two trips before its read.
            if file.contains(['/', '\\']) || file.starts_with('.') {
                return Ok(None);
            }
            let path = root.join(user_id.to_string()).join(file);
            let open = {
                let path = path.clone();
                async move {
                    tokio::task::spawn_blocking(move || open_local(&path))
                        .await
                        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                }
            };
            let not_found = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
            return match self.guard.run(|e| !not_found(e), open).await? {
                Ok(data) => Ok(Some(data)),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(AppError::Unavailable(Arc::new(
                    anyhow::Error::new(e).context(format!("photo store: {}", path.display())),
                ))),
            };
        }
        let not_found = |e: &object_store::Error| matches!(e, object_store::Error::NotFound { .. });
        let location = key(user_id, file);
        let result = match self
            .guard
            .run(|e| !not_found(e), self.store.get(&location))
            .await?
        {
            Ok(result) => result,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        Ok(Some(PhotoData {
            len: Some(result.meta.size),
            chunks: result.into_stream().map_err(std::io::Error::other).boxed(),
        }))
    }

    /// The objects of each user last changed more than `grace` ago, for the sweep.
    pub async fn stored(&self, grace: Duration) -> Result<Vec<(i32, Vec<String>)>, AppError> {
        let mut by_user: std::collections::BTreeMap<i32, Vec<String>> = Default::default();
        let cutoff = chrono::Utc::now() - chrono::TimeDelta::from_std(grace).unwrap_or_default();
        let mut objects = self.store.list(None);
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(unavailable)?;
            if meta.last_modified > cutoff {
                continue;
            }
            let mut parts = meta.location.parts();
            let (Some(user), Some(file), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let Ok(user_id) = user.as_ref().parse::<i32>() else {
                continue;
            };
            by_user
                .entry(user_id)
                .or_default()
                .push(file.as_ref().to_owned());
        }
        Ok(by_user.into_iter().collect())
    }

    /// Removes the staging files (`{name}#{n}`) a local store's writes left behind when the
    /// process stopped mid-write and that are older than `grace`; listings never show them.
    /// Returns how many went.
    pub async fn remove_abandoned_writes(&self, grace: Duration) -> usize {
        let Some(root) = self.local_root.clone() else {
            return 0;
        };
        let abandoned = |name: &str| {
            name.rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        let sweep = move || {
            let mut removed = 0;
            let users = std::fs::read_dir(root.as_path()).into_iter().flatten();
            for user in users.flatten() {
                let files = std::fs::read_dir(user.path()).into_iter().flatten();
                for file in files.flatten() {
                    let old = file
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > grace));
                    if old
                        && abandoned(&file.file_name().to_string_lossy())
                        && std::fs::remove_file(file.path()).is_ok()
                    {
                        removed += 1;
                    }
                }
            }
            removed
        };
        tokio::task::spawn_blocking(sweep).await.unwrap_or(0)
    }

    /// Removes an object [`PhotoStore::stored`] listed.
    pub async fn remove_stored(&self, user_id: i32, file: &str) {
        if file.contains(['/', '\\']) || file.starts_with("..") {
            return;
        }
        self.delete(&key(user_id, file)).await;
    }

    /// Removes every object of a user (their account is gone); a failure is logged, not
    /// returned, and the sweep takes what is left.
    pub async fn remove_user(&self, user_id: i32) {
        let prefix = ObjectPath::from(user_id.to_string());
        let locations: Vec<ObjectPath> = match self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
        {
            Ok(locations) => locations,
            Err(e) => {
                tracing::error!(user_id, error = %e, "cannot list a deleted user's photos");
                return;
            }
        };
        for location in locations {
            self.delete(&location).await;
        }
        if let Some(root) = &self.local_root {
            // The emptied folder; another upload racing the deletion may have refilled it.
            let _ = tokio::fs::remove_dir(root.join(user_id.to_string())).await;
        }
    }

    /// Removes the photo behind a public path, with its variants; a failure is logged, not
    /// returned.
    pub async fn remove(&self, public_path: &str) {
        let parsed = public_path
            .strip_prefix(PUBLIC_PREFIX)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.split_once('/'))
            .filter(|(user, file)| self.locate(user, file).is_some())
            .and_then(|(user, file)| Some((user.parse::<i32>().ok()?, file)));
        let Some((user_id, file)) = parsed else {
            tracing::error!(
                path = public_path,
                "refusing to remove an unexpected photo path"
            );
            return;
        };
        self.delete(&key(user_id, file)).await;
        for size in VARIANT_SIZES {
            self.delete(&key(user_id, &variant_file(stem_of(file), size)))
                .await;
        }
    }

    /// The type of `{user_id}/{file}` for `GET /uploads/{user_id}/{file}`, if the names are
    /// ones this store makes. Anything else (`..`, separators, other names) is `None` before
    /// the store is asked.
    pub fn locate(&self, user_id: &str, file: &str) -> Option<ImageKind> {
        // The canonical spelling only (`/uploads/01/…` is not `/uploads/1/…`): one object,
        // one URL, for caches as for the ETag.
        let valid_user = !user_id.is_empty()
            && user_id.len() <= 10
            && user_id.bytes().all(|b| b.is_ascii_digit())
            && !(user_id.len() > 1 && user_id.starts_with('0'));
        let (stem, ext) = file.rsplit_once('.')?;
        let kind = ImageKind::from_extension(ext)?;
        let valid_stem = Uuid::try_parse(stem).is_ok_and(|u| u.hyphenated().to_string() == stem);
        (valid_user && valid_stem).then_some(kind)
    }

    async fn delete(&self, location: &ObjectPath) {
        let not_found = |e: &object_store::Error| matches!(e, object_store::Error::NotFound { .. });
        let deleted = match self
            .guard
            .run(|e| !not_found(e), self.store.delete(location))
            .await
        {
            Ok(deleted) => deleted,
            Err(e) => {
                tracing::error!(%location, error = e.message(), "could not remove a photo object");
                return;
            }
        };
        match deleted {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => {
                tracing::warn!(%location, "photo object was already gone");
            }
            Err(e) => tracing::error!(%location, error = %e, "could not remove a photo object"),
        }
    }
}

/// The name of a photo's variant: `{stem}-{size}.webp`.
pub fn variant_file(stem: &str, size: u32) -> String {
    format!("{stem}-{size}.webp")
}

/// The stem a stored object belongs to: the photo's own for `{uuid}.{ext}` and its variants.
pub fn stem_of(file: &str) -> &str {
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    VARIANT_SIZES
        .iter()
        .find_map(|size| stem.strip_suffix(&format!("-{size}")))
        .unwrap_or(stem)
}

fn key(user_id: i32, file: &str) -> ObjectPath {
    ObjectPath::from_iter([user_id.to_string(), file.to_owned()])
}

fn unavailable(e: object_store::Error) -> AppError {
    AppError::Unavailable(Arc::new(anyhow::Error::new(e).context("photo store")))
}

/// Local files under `dir` (created if missing).
fn local(dir: &std::path::Path) -> Result<LocalFileSystem, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    LocalFileSystem::new_with_prefix(dir).map_err(|e| format!("cannot use {}: {e}", dir.display()))
}

/// An S3 bucket (`s3://bucket[/prefix]`), configured by the standard `AWS_*` variables
/// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_ALLOW_HTTP`, …). Requests time out after 10 s unless `AWS_TIMEOUT` says otherwise,
/// and are retried twice, within 5 s.
fn s3(url: &str, aws: &[(&str, Secret)]) -> Result<Arc<dyn ObjectStore>, String> {
    use object_store::{
        BackoffConfig, ClientConfigKey, RetryConfig,
        aws::{AmazonS3Builder, AmazonS3ConfigKey},
        prefix::PrefixStore,
    };
    // TLS (an https endpoint) by ring, for the process; once is enough, and a second call (tests
    // start many apps) changes nothing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rest = url.trim_start_matches("s3://");
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
    for (name, value) in aws {
        let key = name
            .to_ascii_lowercase()
            .parse::<AmazonS3ConfigKey>()
            .map_err(|e| format!("{name}: {e}"))?;
        builder = builder.with_config(key, value.expose_secret());
    }
    for (key, value) in [
        (ClientConfigKey::Timeout, STORE_TIMEOUT),
        (ClientConfigKey::ConnectTimeout, STORE_CONNECT_TIMEOUT),
    ] {
        let key = AmazonS3ConfigKey::Client(key);
        if builder.get_config_value(&key).is_none() {
            builder = builder.with_config(key, value);
        }
    }
    let store = builder
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(5),
        })
        .build()
        .map_err(|e| format!("PHOTO_STORE {url}: {e}"))?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_belongs_to_its_photo() {
        assert_eq!(stem_of("0f-64.webp"), "0f");
        assert_eq!(stem_of("0f-256.webp"), "0f");
        assert_eq!(stem_of("0f.jpg"), "0f");
    }

    #[test]
    fn only_names_the_store_makes_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let store = PhotoStore::new(None, dir.path(), &[]).unwrap();
        let name = format!("{}.jpg", Uuid::new_v4());
        assert_eq!(store.locate("42", &name), Some(ImageKind::Jpeg));
        for (user, file) in [
            ("..", name.as_str()),
            ("42", "../../etc/passwd"),
            ("42", "..%2F..%2Fetc%2Fpasswd"),
            ("42", "/etc/passwd"),
            ("4 2", name.as_str()),
            ("042", name.as_str()),
            ("00", name.as_str()),
            ("42", "photo.jpg"),
            ("42", &name.replace(".jpg", ".gif")),
            ("42", &name.to_uppercase()),
        ] {
            assert!(store.locate(user, file).is_none(), "{user}/{file}");
        }
    }

    #[test]
    fn every_aws_variable_configures_the_s3_store() {
        let value = |name: &str| match name {
            "AWS_ALLOW_HTTP" | "AWS_VIRTUAL_HOSTED_STYLE_REQUEST" => "true",
            "AWS_TIMEOUT" | "AWS_CONNECT_TIMEOUT" => "3 seconds",
            "AWS_ENDPOINT" => "http://127.0.0.1:9",
            _ => "x",
        };
        let aws: Vec<(&str, Secret)> = crate::config::AWS_VARIABLES
            .iter()
            .map(|name| (*name, Secret::from(value(name).to_owned())))
            .collect();
        let store = PhotoStore::new(Some("s3://photos/svc"), std::path::Path::new("."), &aws)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(store.local_root.is_none());
        assert_eq!(store.describe(), "s3://photos/svc at http://127.0.0.1:9");
        let refused = PhotoStore::new(Some("gs://photos"), std::path::Path::new("."), &[]);
        assert!(refused.is_err());
    }
}
