//! Profile photos: recognised by content, decoded within limits, re-encoded (which drops EXIF
//! and every other piece of metadata, GPS positions included), and stored under a name the
//! server chooses.
//!
//! Files on disk always match what the database references: a new file is written before the
//! row changes and removed again if the change fails; the file a change replaced is removed
//! after it commits. Removal errors are logged, never returned.

use std::{
    io::Cursor,
    path::{Path, PathBuf},
    sync::Arc,
};

use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, codecs::jpeg::JpegEncoder,
    metadata::Orientation,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::error::{AppError, FieldError};

/// Widest and tallest image accepted; larger ones are refused from their header alone.
pub const MAX_SIDE: u32 = 4096;
/// Most memory one decode may allocate.
const MAX_DECODE_BYTES: u64 = 96 * 1024 * 1024;
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

fn invalid(message: &str) -> AppError {
    AppError::Validation(vec![FieldError::new("file", message)])
}

/// Checks that `bytes` is a JPEG, PNG or WebP image that decodes within the limits, and
/// returns it re-encoded without metadata (the EXIF orientation applied to the pixels).
/// CPU-bound: call it on the blocking pool.
pub fn process(bytes: &[u8]) -> Result<(ImageKind, Vec<u8>), AppError> {
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
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(refused)?;
    image.apply_orientation(orientation);

    let mut out = Cursor::new(Vec::with_capacity(bytes.len()));
    let encoded = match kind {
        // JPEG has no alpha channel; quality 90 keeps photos faithful at a modest size.
        ImageKind::Jpeg => {
            JpegEncoder::new_with_quality(&mut out, 90).encode_image(&image.to_rgb8())
        }
        // The WebP encoder takes 8-bit RGB(A) only (and writes lossless).
        ImageKind::WebP => {
            DynamicImage::ImageRgba8(image.to_rgba8()).write_to(&mut out, ImageFormat::WebP)
        }
        ImageKind::Png => image.write_to(&mut out, ImageFormat::Png),
    };
    encoded.map_err(AppError::internal)?;
    Ok((kind, out.into_inner()))
}

/// Where photos live on disk: `UPLOAD_DIR/{user_id}/{uuid}.{ext}`.
#[derive(Clone)]
pub struct PhotoStore {
    root: Arc<PathBuf>,
    /// Decoding and encoding are CPU-bound; at most one per core at a time.
    permits: Arc<Semaphore>,
}

impl PhotoStore {
    pub fn new(root: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            root: Arc::new(root),
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    /// [`process`] on the blocking pool.
    pub async fn process(&self, bytes: Vec<u8>) -> Result<(ImageKind, Vec<u8>), AppError> {
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || process(&bytes))
            .await
            .map_err(AppError::internal)?
    }

    /// Writes a new photo (to a temporary name, then renamed, so a reader never sees half a
    /// file) and returns its public path `uploads/{user_id}/{uuid}.{ext}`.
    pub async fn save(
        &self,
        user_id: i32,
        kind: ImageKind,
        bytes: Vec<u8>,
    ) -> Result<String, AppError> {
        let dir = self.root.join(user_id.to_string());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(AppError::internal)?;
        let file = format!("{}.{}", Uuid::new_v4(), kind.extension());
        let temporary = dir.join(format!(".{file}.tmp"));
        tokio::fs::write(&temporary, bytes)
            .await
            .map_err(AppError::internal)?;
        if let Err(e) = tokio::fs::rename(&temporary, dir.join(&file)).await {
            remove_file(&temporary).await;
            return Err(AppError::internal(e));
        }
        Ok(format!("{PUBLIC_PREFIX}/{user_id}/{file}"))
    }

    /// Removes the file behind a public path; a failure is logged, not returned.
    pub async fn remove(&self, public_path: &str) {
        let parts = public_path
            .strip_prefix(PUBLIC_PREFIX)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.split_once('/'));
        match parts.and_then(|(user, file)| self.locate(user, file)) {
            Some((path, _)) => remove_file(&path).await,
            None => tracing::error!(
                path = public_path,
                "refusing to remove an unexpected photo path"
            ),
        }
    }

    /// The file for `GET /uploads/{user_id}/{file}`, if the names are ones this store makes.
    /// Anything else (`..`, separators, other names) is `None` before the disk is touched.
    pub fn locate(&self, user_id: &str, file: &str) -> Option<(PathBuf, ImageKind)> {
        let valid_user = !user_id.is_empty()
            && user_id.len() <= 10
            && user_id.bytes().all(|b| b.is_ascii_digit());
        let (stem, ext) = file.rsplit_once('.')?;
        let kind = ImageKind::from_extension(ext)?;
        let valid_stem = Uuid::try_parse(stem).is_ok_and(|u| u.hyphenated().to_string() == stem);
        (valid_user && valid_stem).then(|| (self.root.join(user_id).join(file), kind))
    }
}

async fn remove_file(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "photo file was already gone");
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "could not remove photo file")
        }
    }
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
        let (kind, bytes) = process(&png(20, 10)).unwrap();
        assert_eq!(kind, ImageKind::Png);
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (20, 10));
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
        let store = PhotoStore::new(PathBuf::from("/srv/uploads"));
        let name = format!("{}.jpg", Uuid::new_v4());
        let (path, kind) = store.locate("42", &name).unwrap();
        assert_eq!(path, PathBuf::from("/srv/uploads/42").join(&name));
        assert_eq!(kind, ImageKind::Jpeg);
        for (user, file) in [
            ("..", name.as_str()),
            ("42", "../../etc/passwd"),
            ("42", "..%2F..%2Fetc%2Fpasswd"),
            ("42", "/etc/passwd"),
            ("4 2", name.as_str()),
            ("42", "photo.jpg"),
            ("42", &name.replace(".jpg", ".gif")),
            ("42", &name.to_uppercase()),
        ] {
            assert!(store.locate(user, file).is_none(), "{user}/{file}");
        }
    }
}
