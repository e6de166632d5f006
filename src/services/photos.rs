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
    time::Duration,
};

use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, codecs::jpeg::JpegEncoder,
    metadata::Orientation,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::error::AppError;

/// Widest and tallest image accepted; larger ones are refused from their header alone.
pub const MAX_SIDE: u32 = 4096;
/// Most memory the decoded pixels of one image may take, counted in the bytes per pixel of
/// its own colour type: a 16-bit RGBA image needs 8 bytes a pixel, so 4096×4096 of it (128
/// MiB, from a file of a few KB) is refused, while 8-bit RGBA at that size (64 MiB) passes.
pub const MAX_DECODE_BYTES: u64 = 96 * 1024 * 1024;
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
pub fn too_large(max_bytes: usize) -> AppError {
    AppError::PayloadTooLarge(format!("File too large; the limit is {max_bytes} bytes."))
}

fn invalid(message: &str) -> AppError {
    AppError::validation("file", message)
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
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(invalid(&format!(
            "The image is too large; its pixels may take at most {} MiB.",
            MAX_DECODE_BYTES / (1024 * 1024)
        )));
    }
    if !is_complete(kind, bytes) {
        return Err(invalid("The image is truncated."));
    }
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

/// The public path of a stored file: `uploads/{user_id}/{file}`.
pub fn public_path(user_id: i32, file: &str) -> String {
    format!("{PUBLIC_PREFIX}/{user_id}/{file}")
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
        Ok(public_path(user_id, &file))
    }

    /// The files of each user folder last changed more than `grace` ago (temporary ones
    /// included), for the sweep.
    pub async fn stored(&self, grace: Duration) -> Result<Vec<(i32, Vec<String>)>, AppError> {
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            let users = match std::fs::read_dir(root.as_path()) {
                Ok(users) => users,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
                Err(e) => return Err(AppError::internal(e)),
            };
            for user in users.flatten() {
                let Some(user_id) = user
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                let Ok(files) = std::fs::read_dir(user.path()) else {
                    continue;
                };
                let old: Vec<String> = files
                    .flatten()
                    .filter(|f| {
                        f.metadata()
                            .and_then(|m| m.modified())
                            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > grace))
                    })
                    .filter_map(|f| f.file_name().into_string().ok())
                    .collect();
                if !old.is_empty() {
                    found.push((user_id, old));
                }
            }
            Ok(found)
        })
        .await
        .map_err(AppError::internal)?
    }

    /// Removes a file [`PhotoStore::stored`] listed (a photo or a temporary file).
    pub async fn remove_stored(&self, user_id: i32, file: &str) {
        if file.contains(['/', '\\']) || file.starts_with("..") {
            return;
        }
        remove_file(&self.root.join(user_id.to_string()).join(file)).await;
    }

    /// Removes a user's folder and every file in it (their account is gone); a failure is
    /// logged, not returned, and the sweep takes what is left.
    pub async fn remove_user(&self, user_id: i32) {
        let dir = self.root.join(user_id.to_string());
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(path = %dir.display(), error = %e, "cannot remove a deleted user's photos");
            }
        }
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
