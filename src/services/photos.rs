//! Profile photos: recognised by content, decoded within limits, re-encoded (which drops EXIF
//! and every other piece of metadata, GPS positions included), and stored under a name the
//! server chooses.
//!
//! Stored objects always match what the database references: a new photo (and its
//! variants) is written before the row changes and removed again if the change fails; the
//! photo a change replaced is removed after it commits. Removal errors are logged, never
//! returned; the sweep removes what a failure or a crash left behind. A store that fails a
//! write or a read is a 503.

use std::{future::Future, io::Cursor, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, codecs::jpeg::JpegEncoder,
    imageops::FilterType, metadata::Orientation,
};
use object_store::{ObjectStore, ObjectStoreExt, local::LocalFileSystem, path::Path as ObjectPath};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{config::Secret, error::AppError};

/// Widest and tallest image accepted; larger ones are refused from their header alone.
pub const MAX_SIDE: u32 = 4096;
/// Most memory the decoded pixels of one image may take, counted in the bytes per pixel of
/// its own colour type: a 16-bit RGBA image needs 8 bytes a pixel, so 4096×4096 of it (128
/// MiB, from a file of a few KB) is refused, while 8-bit RGBA at that size (64 MiB) passes.
pub const MAX_DECODE_BYTES: u64 = 96 * 1024 * 1024;
/// Most memory processing one image may take at its peak: the decoded pixels and every copy
/// made of them on the way (a rotation, a colour conversion, the encoded output, the
/// resampling buffer of the variants). Counted from the header, before decoding; one such
/// budget per core (processing runs one image per core at a time).
pub const MAX_PIPELINE_BYTES: u64 = 128 * 1024 * 1024;
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

/// The 413 for a file over `max_bytes` (`MAX_UPLOAD_BYTES`), on either upload path.
fn invalid(message: &str) -> AppError {
    AppError::validation("file", message)
}

/// The sides of the square WebP variants made of every photo (`?size=` on its URL).
pub const VARIANT_SIZES: [u32; 2] = [64, 256];

/// A photo ready to store: re-encoded as its own type, and its square variants.
#[derive(Debug)]
pub struct Processed {
    pub kind: ImageKind,
    pub bytes: Vec<u8>,
    /// `(side, WebP bytes)` for each of [`VARIANT_SIZES`].
    pub variants: Vec<(u32, Vec<u8>)>,
}

/// Checks that `bytes` is a JPEG, PNG or WebP image that decodes within the limits, and
/// returns it re-encoded without metadata (the EXIF orientation applied to the pixels), with
/// its square variants. CPU-bound: call it on the blocking pool.
pub fn process(bytes: &[u8]) -> Result<Processed, AppError> {
    if bytes.is_empty() {
        return Err(invalid("The file is empty."));
    }
    let kind = match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => ImageKind::Jpeg,
        Ok(ImageFormat::Png) => ImageKind::Png,
        Ok(ImageFormat::WebP) => ImageKind::WebP,
        _ => {
            return Err(invalid(
                "Unsupported file type; upload a JPEG, PNG or WebP image.",
            ));
        }
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    reader.limits(limits);

    let refused = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => invalid(&format!(
            "The image is too large; at most {MAX_SIDE}×{MAX_SIDE} pixels."
        )),
        _ => invalid("The file is not a valid image."),
    };
    let mut decoder = reader.into_decoder().map_err(refused)?;
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(invalid(&format!(
            "The image is too large; its pixels may take at most {} MiB.",
            MAX_DECODE_BYTES / (1024 * 1024)
        )));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    if peak_bytes(kind, &decoder, orientation) > MAX_PIPELINE_BYTES {
        return Err(invalid(&format!(
            "The image is too large to process; it would take more than {} MiB.",
            MAX_PIPELINE_BYTES / (1024 * 1024)
        )));
    }
    if !is_complete(kind, bytes) {
        return Err(invalid("The image is truncated."));
    }
    let mut image = DynamicImage::from_decoder(decoder).map_err(refused)?;
    image.apply_orientation(orientation);

    // The variants first: their buffers are gone before the full-size output is made.
    let variants = variants(&image)?;
    let mut out = Cursor::new(Vec::with_capacity(bytes.len()));
    let encoded = match (kind, &image) {
        // JPEG has no alpha channel; quality 90 keeps photos faithful at a modest size.
        (ImageKind::Jpeg, DynamicImage::ImageRgb8(_) | DynamicImage::ImageLuma8(_)) => {
            image.write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))
        }
        (ImageKind::Jpeg, _) => {
            JpegEncoder::new_with_quality(&mut out, 90).encode_image(&image.to_rgb8())
        }
        // The WebP encoder takes 8-bit RGB(A) only (and writes lossless).
        (ImageKind::WebP, DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_)) => {
            image.write_to(&mut out, ImageFormat::WebP)
        }
        (ImageKind::WebP, _) => {
            DynamicImage::ImageRgba8(image.to_rgba8()).write_to(&mut out, ImageFormat::WebP)
        }
        (ImageKind::Png, _) => image.write_to(&mut out, ImageFormat::Png),
    };
    encoded.map_err(AppError::internal)?;
    Ok(Processed {
        kind,
        bytes: out.into_inner(),
        variants,
    })
}

/// The most memory [`process`] holds at once for this image: its decoded pixels, and the
/// largest of what it makes next to them: a rotated copy, the variants' resampling buffer
/// (floats, 16 bytes a pixel, of the square's side × the largest variant), or a colour
/// conversion with the encoded output (lossless outputs counted at the decoded size, JPEG at
/// a byte a pixel).
fn peak_bytes(kind: ImageKind, decoder: &impl ImageDecoder, orientation: Orientation) -> u64 {
    use image::ColorType;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    let decoded = decoder.total_bytes();
    let rotated = match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => decoded,
        _ => 0,
    };
    let largest = u64::from(VARIANT_SIZES.into_iter().max().unwrap_or_default());
    let resampling = u64::from(width.min(height)) * largest * 16;
    let color = decoder.color_type();
    let conversion = match (kind, color) {
        (ImageKind::Jpeg, ColorType::Rgb8 | ColorType::L8) => 0,
        (ImageKind::Jpeg, _) => pixels * 3,
        (ImageKind::WebP, ColorType::Rgb8 | ColorType::Rgba8) => 0,
        (ImageKind::WebP, _) => pixels * 4,
        (ImageKind::Png, _) => 0,
    };
    let output = match kind {
        ImageKind::Jpeg => pixels,
        ImageKind::Png | ImageKind::WebP => decoded,
    };
    decoded + rotated.max(resampling).max(conversion + output)
}

/// The square variants of `image`: its centre (a view, not a copy), scaled to each of
/// [`VARIANT_SIZES`] (the smaller made from the larger), as WebP. Cropping before scaling
/// also keeps a long thin image from being scaled up along its length first.
fn variants(image: &DynamicImage) -> Result<Vec<(u32, Vec<u8>)>, AppError> {
    use image::{GenericImageView, RgbaImage, codecs::webp::WebPEncoder, imageops};
    let mut sizes = VARIANT_SIZES;
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let (width, height) = image.dimensions();
    let side = width.min(height);
    let square = imageops::crop_imm(image, (width - side) / 2, (height - side) / 2, side, side);
    let mut out = Vec::with_capacity(sizes.len());
    let mut previous: Option<RgbaImage> = None;
    for size in sizes {
        let scaled = match &previous {
            None => imageops::resize(&*square, size, size, FilterType::Triangle),
            Some(larger) => imageops::resize(larger, size, size, FilterType::Triangle),
        };
        let mut bytes = Vec::new();
        WebPEncoder::new_lossless(&mut bytes)
            .encode(scaled.as_raw(), size, size, image::ExtendedColorType::Rgba8)
            .map_err(AppError::internal)?;
        out.push((size, bytes));
        previous = Some(scaled);
    }
    out.sort_unstable_by_key(|(size, _)| *size);
    Ok(out)
}

/// Does the file hold its format's end? Decoders fill a cut-off image with grey and call it
/// fine, so a few hundred bytes could otherwise cost a full-size decode and a full-size file.
fn is_complete(kind: ImageKind, bytes: &[u8]) -> bool {
    match kind {
        // An end-of-image marker after the (first) start of scan.
        ImageKind::Jpeg => {
            let marker = |m: [u8; 2]| bytes.windows(2).position(|w| w == m);
            let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
            matches!((marker([0xFF, 0xDA]), last_eoi), (Some(sos), Some(eoi)) if eoi > sos)
        }
        // The IEND chunk.
        ImageKind::Png => bytes.windows(4).rev().take(64).any(|w| w == b"IEND"),
        // The RIFF header's length, all there.
        ImageKind::WebP => bytes.get(4..8).is_some_and(|size| {
            let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
            bytes.len() >= size.saturating_add(8)
        }),
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

/// Local photos up to this size are read in one go (the variants, most photos); larger ones
/// are streamed in chunks of [`CHUNK`].
const READ_WHOLE: u64 = 256 * 1024;
const CHUNK: usize = 64 * 1024;

/// How long one call to the store may take, wherever it is.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may wait for one of the `PHOTO_STORE_CONCURRENCY` places.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// Failures in a row after which the store is not asked for [`BREAKER_OPEN`].
const BREAKER_FAILURES: u32 = 5;
const BREAKER_OPEN: Duration = Duration::from_secs(30);

/// What a slow or dead store may hold: at most `PHOTO_STORE_CONCURRENCY` calls at once, each
/// bounded by [`CALL_TIMEOUT`]; after [`BREAKER_FAILURES`] failures in a row every call is
/// answered 503 at once for [`BREAKER_OPEN`], then the store is tried again.
struct StoreGuard {
    calls: Semaphore,
    failures: std::sync::atomic::AtomicU32,
    /// Milliseconds since `epoch` until which calls are refused.
    open_until: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

impl StoreGuard {
    fn new(concurrency: usize) -> Self {
        Self {
            calls: Semaphore::new(concurrency.max(1)),
            failures: Default::default(),
            open_until: Default::default(),
            epoch: std::time::Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs `call` within the bounds; `is_failure` tells which of its errors count against
    /// the store (a missing object does not). The outer error is the guard's own refusal.
    async fn run<T, E>(
        &self,
        is_failure: impl Fn(&E) -> bool,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<Result<T, E>, AppError> {
        use std::sync::atomic::Ordering;
        if self.now_ms() < self.open_until.load(Ordering::Acquire) {
            return Err(store_down(
                "the photo store failed repeatedly; not asking it for now",
            ));
        }
        let _permit = tokio::time::timeout(QUEUE_TIMEOUT, self.calls.acquire())
            .await
            .map_err(|_| store_down("every photo store call is in use"))?
            .map_err(AppError::internal)?;
        let result = tokio::time::timeout(CALL_TIMEOUT, call).await;
        match &result {
            Ok(Ok(_)) => self.failures.store(0, Ordering::Release),
            Ok(Err(e)) if !is_failure(e) => self.failures.store(0, Ordering::Release),
            _ => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= BREAKER_FAILURES {
                    let until = self.now_ms() + BREAKER_OPEN.as_millis() as u64;
                    self.open_until.store(until, Ordering::Release);
                    tracing::error!(
                        failures,
                        "photo store failing: refusing photo calls for 30 s"
                    );
                }
            }
        }
        result.map_err(|_| store_down("a photo store call timed out"))
    }
}

fn store_down(why: &'static str) -> AppError {
    AppError::Unavailable(Arc::new(anyhow::anyhow!(why)))
}

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
                        format!(" at {}", value.expose())
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
        let mut objects = vec![(key(user_id, &file), photo.bytes)];
        for (size, bytes) in photo.variants {
            objects.push((key(user_id, &variant_file(&stem, size)), bytes));
        }
        let mut written = Vec::new();
        for (location, bytes) in objects {
            let put = self
                .guard
                .run(|_| true, self.store.put(&location, bytes.into()))
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
        builder = builder.with_config(key, value.expose());
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
    use image::RgbImage;

    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(RgbImage::new(width, height))
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn images_are_re_encoded_as_their_own_type() {
        let photo = process(&png(20, 10)).unwrap();
        assert_eq!(photo.kind, ImageKind::Png);
        let decoded = image::load_from_memory(&photo.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (20, 10));
        // Square WebP variants of every size, even from a wide image.
        let sizes: Vec<u32> = photo.variants.iter().map(|(size, _)| *size).collect();
        assert_eq!(sizes, VARIANT_SIZES);
        for (size, bytes) in &photo.variants {
            assert_eq!(image::guess_format(bytes).unwrap(), ImageFormat::WebP);
            let variant = image::load_from_memory(bytes).unwrap();
            assert_eq!((variant.width(), variant.height()), (*size, *size));
        }
        assert_eq!(stem_of("0f-64.webp"), "0f");
        assert_eq!(stem_of("0f-256.webp"), "0f");
        assert_eq!(stem_of("0f.jpg"), "0f");
    }

    #[test]
    fn non_images_and_empty_files_are_refused() {
        assert!(process(b"").is_err());
        assert!(process(b"GIF89a not accepted").is_err());
        assert!(process(b"hello, I am text named photo.jpg").is_err());
        // A PNG signature followed by garbage.
        let mut broken = png(4, 4);
        broken.truncate(40);
        assert!(process(&broken).is_err());
    }

    fn noise(width: u32, height: u32) -> DynamicImage {
        let mut seed = 0x2545_f491_u32;
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |_, _| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            image::Rgb([seed as u8, (seed >> 8) as u8, (seed >> 16) as u8])
        }))
    }

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    #[test]
    fn truncated_images_are_refused() {
        let image = noise(64, 64);
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            let whole = encoded(&image, format);
            assert!(process(&whole).is_ok(), "{format:?}");
            let cut = &whole[..whole.len() * 2 / 3];
            let err = process(cut).unwrap_err();
            assert_eq!(err.message(), "The image is truncated.", "{format:?}");
        }
    }

    #[test]
    fn a_jpeg_cut_after_its_header_costs_nothing() {
        // The header of a 4096×4096 JPEG and a little scan data: decoders would fill the
        // rest with grey at full size.
        let big = encoded(&noise(4096, 16), ImageFormat::Jpeg);
        let mut header = big[..600].to_vec();
        // Patch the frame's height (SOF0: FF C0, length, precision, height, width).
        let sof = header.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        header[sof + 5..sof + 7].copy_from_slice(&4096u16.to_be_bytes());
        let started = std::time::Instant::now();
        assert!(process(&header).is_err());
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    #[test]
    fn decoded_size_counts_the_bytes_of_each_pixel() {
        // 4096×4096 RGBA at 16 bits a channel: within the side limit, a small file, but
        // 128 MiB of pixels as decoded.
        let wide = DynamicImage::ImageRgba16(image::ImageBuffer::new(4096, 4096));
        let file = encoded(&wide, ImageFormat::Png);
        assert!(file.len() < 1024 * 1024, "{}", file.len());
        let err = process(&file).unwrap_err();
        assert!(err.message().contains("too large"), "{}", err.message());
        // 8 bits a channel is fine.
        let narrow = DynamicImage::ImageRgba8(image::ImageBuffer::new(2048, 2048));
        assert!(process(&encoded(&narrow, ImageFormat::Png)).is_ok());
    }

    #[test]
    fn huge_declared_dimensions_are_refused_from_the_header() {
        // A valid header declaring 50000×50000, with no pixel data behind it.
        let bomb = png_header(50_000, 50_000);
        let started = std::time::Instant::now();
        let err = process(&bomb).unwrap_err();
        assert!(started.elapsed().as_millis() < 500);
        assert!(err.message().contains("too large"), "{}", err.message());
    }

    /// The first bytes of a PNG: signature and an IHDR chunk declaring the size.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&ihdr);
        let crc = crc32(&chunk);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend_from_slice(&(ihdr.len() as u32).to_be_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
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
            .map(|name| (*name, Secret::new(value(name).to_owned())))
            .collect();
        let store = PhotoStore::new(Some("s3://photos/svc"), std::path::Path::new("."), &aws)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(store.local_root.is_none());
        assert_eq!(store.describe(), "s3://photos/svc at http://127.0.0.1:9");
        let refused = PhotoStore::new(Some("gs://photos"), std::path::Path::new("."), &[]);
        assert!(refused.is_err());
    }
}
