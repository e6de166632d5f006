//! Image work: recognising an upload by its content, decoding it within limits (pixels, and
//! the memory the whole pipeline takes), re-encoding it without metadata, and its variants.

use std::io::Cursor;

use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, codecs::jpeg::JpegEncoder,
    imageops::FilterType, metadata::Orientation,
};

use super::ImageKind;
use crate::error::AppError;

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
/// A refused file: 400 on `file`.
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
}
