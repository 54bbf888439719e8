//! Raster images (PNG, JPEG, GIF, WebP): their size read from the header
//! alone ([`probe`]), and a small thumbnail ([`thumbnail`]) decoded only
//! when the header promises an image within our bounds, and then under the
//! `image` crate's limits as well.
//!
//! The bounds are what one decode may cost: [`MAX_PIXELS`] and
//! [`MAX_SIDE`] refuse a 50,000 × 50,000 header before any pixel is
//! allocated, and [`MAX_DECODE_BYTES`] refuses an image within them whose
//! decoded form would still be too large (16 bits a channel) and caps what
//! the decoder may allocate, so a small file that inflates to gigabytes (a
//! decompression bomb) stops at the limit.
//!
//! More than half of the file is its tests, whose images are made in code: a
//! real file of each format, and headers written byte by byte that claim
//! sizes no test should allocate.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::error::ImageError;
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageReader, Limits};

use super::MediaError;

/// The longest side we decode. Phone cameras and 8K frames stay well
/// under it, while a 1 × 1,000,000 strip (within [`MAX_PIXELS`]) is
/// refused: nobody shares one, and decoders handle such shapes badly.
pub const MAX_SIDE: u32 = 16_384;

/// The most pixels we decode: a 50-megapixel camera's full size, which at
/// 4 bytes a pixel is 200 MB decoded, within [`MAX_DECODE_BYTES`].
pub const MAX_PIXELS: u64 = 50_000_000;

/// The most memory one decode may take for the decoded image and the
/// decoder's own buffers (the `image` crate's `max_alloc`). Callers bound
/// how many decodes run at once, so this times their permits is the
/// memory thumbnails can take.
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// The box a thumbnail fits in: 320 px is a chat bubble's width on a
/// high-density phone screen.
pub const THUMBNAIL_SIDE: u32 = 320;

/// An avatar's side in pixels: sharp at twice the size the web client
/// shows it, a few KiB.
pub const AVATAR_SIDE: u32 = 128;

/// JPEG quality of opaque thumbnails: no visible artefacts at 320 px, and
/// a third of the size of quality 95.
const JPEG_QUALITY: u8 = 80;

/// The raster formats we decode and show inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG, APNG included (its first frame).
    Png,
    /// JPEG.
    Jpeg,
    /// GIF, animated or not (its first frame).
    Gif,
    /// WebP, lossy or lossless, animated or not (its first frame).
    WebP,
}

impl ImageFormat {
    /// Its Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::WebP => "image/webp",
        }
    }

    /// The format with this Content-Type, if it is one of ours.
    pub(super) fn from_content_type(content_type: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Gif, Self::WebP]
            .into_iter()
            .find(|format| format.content_type() == content_type)
    }

    fn codec(self) -> image::ImageFormat {
        match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Gif => image::ImageFormat::Gif,
            Self::WebP => image::ImageFormat::WebP,
        }
    }
}

/// An image's size in pixels, as it is shown: a photo whose Exif says
/// "rotate 90°" is as wide as it is stored high.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimensions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A small preview of an image, and the size of the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// The encoded thumbnail.
    pub bytes: Vec<u8>,
    /// `image/jpeg` when the image is opaque, `image/png` when any pixel
    /// is transparent.
    pub content_type: &'static str,
    /// Width in pixels, at most [`THUMBNAIL_SIDE`].
    pub width: u32,
    /// Height in pixels, at most [`THUMBNAIL_SIDE`].
    pub height: u32,
    /// The original's size, as [`probe`] gives it.
    pub original: Dimensions,
}

/// An avatar made of the image: its first frame, turned as its Exif says,
/// cropped to its centred square and resized to [`AVATAR_SIDE`] on a side
/// (enlarged if smaller), always re-encoded as PNG: the uploaded bytes are
/// never served. Checked and decoded under the same limits as
/// [`thumbnail`], and like it synchronous CPU work for a blocking thread.
pub fn avatar(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, MediaError> {
    let header = read_header(bytes, format)?;
    let mut image = decode(bytes, format)?;
    image.apply_orientation(header.orientation);
    let side = image.width().min(image.height());
    let square = image.crop_imm(
        (image.width() - side) / 2,
        (image.height() - side) / 2,
        side,
        side,
    );
    let small = square.resize_exact(
        AVATAR_SIDE,
        AVATAR_SIDE,
        image::imageops::FilterType::Triangle,
    );
    let rgba = small.to_rgba8();
    let mut encoded = Vec::new();
    PngEncoder::new(&mut encoded)
        .write_image(
            rgba.as_raw(),
            AVATAR_SIDE,
            AVATAR_SIDE,
            ExtendedColorType::Rgba8,
        )
        .map_err(|e| MediaError::Thumbnail(e.to_string()))?;
    Ok(encoded)
}

/// What the header says: the stored size and how to turn it for showing.
struct Header {
    width: u32,
    height: u32,
    orientation: Orientation,
}

/// The image's size as shown, read from its header without decoding any
/// pixel, or the reason it will not be decoded: more than [`MAX_SIDE`] on
/// a side or [`MAX_PIXELS`] in all, or a decoded size over
/// [`MAX_DECODE_BYTES`].
///
/// `head` is the file, or a prefix of it long enough to hold the header:
/// a GIF's header and colour table, its first KiB; for a PNG all before its
/// image data, usually within the first few KiB; for a JPEG everything up
/// to its frame header, which follows the Exif and colour profile and in
/// photos can lie 64 KiB or more in; the first 30 bytes of a simple WebP,
/// while an extended one (animated, or with metadata) is read chunk by
/// chunk through the file. Too short a prefix is
/// [`MediaError::UnreadableImage`]; the whole file never is, for a valid
/// image, so pass the whole file when it is at hand.
pub fn probe(head: &[u8], format: ImageFormat) -> Result<Dimensions, MediaError> {
    let header = read_header(head, format)?;
    Ok(shown(header.width, header.height, header.orientation))
}

/// A thumbnail of the image: its first frame, turned as its Exif says,
/// shrunk to fit [`THUMBNAIL_SIDE`] × [`THUMBNAIL_SIDE`] keeping its
/// aspect (never enlarged), as JPEG, or as PNG when it has transparent
/// pixels. The header is checked as by [`probe`] before anything is
/// decoded, then the decode runs under [`MAX_SIDE`] and
/// [`MAX_DECODE_BYTES`] as `image` crate limits.
///
/// This is synchronous CPU work: about a second for a 50-megapixel
/// image, holding up to [`MAX_DECODE_BYTES`] (a progressive JPEG's decoder
/// adds buffers of its own). Callers run it with
/// `tokio::task::spawn_blocking`, holding a permit of a semaphore that
/// bounds how many run at once (one per core is plenty), so that uploads
/// neither stall the runtime's workers nor add up to more memory than
/// those permits allow.
pub fn thumbnail(bytes: &[u8], format: ImageFormat) -> Result<Thumbnail, MediaError> {
    let header = read_header(bytes, format)?;
    let image = decode(bytes, format)?;
    let (width, height) = fit(image.width(), image.height());
    let mut small = if (width, height) == (image.width(), image.height()) {
        image
    } else {
        image.thumbnail_exact(width, height)
    };
    small.apply_orientation(header.orientation);
    let (content_type, encoded) = encode(&small)?;
    Ok(Thumbnail {
        bytes: encoded,
        content_type,
        width: small.width(),
        height: small.height(),
        original: shown(header.width, header.height, header.orientation),
    })
}

/// Reads and checks the header. The reader gets no size limits of its own
/// (they would refuse a huge image without saying its size, which our
/// check does), only the memory one: a PNG's compressed colour profile or
/// text before its pixels is inflated while the header is read.
fn read_header(head: &[u8], format: ImageFormat) -> Result<Header, MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(head), format.codec());
    reader.limits(memory_limit());
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(MediaError::UnreadableImage);
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(MediaError::ImageTooLarge { width, height });
    }
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(MediaError::ImageOverBudget);
    }
    // An unreadable Exif loses the rotation, not the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    Ok(Header {
        width,
        height,
        orientation,
    })
}

/// Decodes the first frame under the `image` crate's limits. The header
/// check has passed, so these hold by then; they are here for a file
/// whose header and pixel data disagree, and the decoder's allocations
/// count against the same budget as the image it returns.
fn decode(bytes: &[u8], format: ImageFormat) -> Result<DynamicImage, MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.codec());
    let mut limits = memory_limit();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    reader.decode().map_err(refusal)
}

fn memory_limit() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// A limit hit is the image's size; anything else is a file that is not
/// the image its header began.
fn refusal(err: ImageError) -> MediaError {
    match err {
        ImageError::Limits(_) => MediaError::ImageOverBudget,
        _ => MediaError::UnreadableImage,
    }
}

/// The size that fits [`THUMBNAIL_SIDE`] square with the same aspect,
/// rounded, at least a pixel a side; the same size when it fits already.
fn fit(width: u32, height: u32) -> (u32, u32) {
    let side = u64::from(THUMBNAIL_SIDE);
    let (long, short) = (u64::from(width.max(height)), u64::from(width.min(height)));
    if long <= side {
        return (width, height);
    }
    // Both below 2^32, so the product fits; the result is at most `side`.
    let scaled = ((short * side + long / 2) / long).max(1) as u32;
    if width >= height {
        (THUMBNAIL_SIDE, scaled)
    } else {
        (scaled, THUMBNAIL_SIDE)
    }
}

/// The size shown once the orientation is applied.
fn shown(width: u32, height: u32, orientation: Orientation) -> Dimensions {
    let quarter_turn = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    if quarter_turn {
        Dimensions {
            width: height,
            height: width,
        }
    } else {
        Dimensions { width, height }
    }
}

/// JPEG for an opaque thumbnail (a photo's is a few KiB), PNG when any
/// pixel is transparent, which JPEG cannot carry. An alpha channel that is
/// opaque throughout, common in screenshots, still makes a JPEG.
fn encode(small: &DynamicImage) -> Result<(&'static str, Vec<u8>), MediaError> {
    let mut bytes = Vec::new();
    let rgba = small.to_rgba8();
    let (width, height) = rgba.dimensions();
    let written = if rgba.pixels().all(|pixel| pixel[3] == u8::MAX) {
        let rgb = DynamicImage::ImageRgba8(rgba).into_rgb8();
        JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .write_image(rgb.as_raw(), width, height, ExtendedColorType::Rgb8)
            .map(|()| ImageFormat::Jpeg)
    } else {
        PngEncoder::new(&mut bytes)
            .write_image(rgba.as_raw(), width, height, ExtendedColorType::Rgba8)
            .map(|()| ImageFormat::Png)
    };
    let format = written.map_err(|e| MediaError::Thumbnail(e.to_string()))?;
    Ok((format.content_type(), bytes))
}

#[cfg(test)]
mod tests {
    use image::codecs::gif::GifEncoder;
    use image::codecs::webp::WebPEncoder;
    use image::{Frame, Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;

    /// One PNG chunk: length, type, data and the CRC of type and data.
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
        out
    }

    /// A well-formed PNG whose header declares `width` × `height` at the
    /// given bit depth and colour type, with image data that inflates to
    /// nothing: all a decoder needs to see to size its buffer.
    fn png_header(width: u32, height: u32, depth: u8, color: u8) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[depth, color, 0, 0, 0]);
        // zlib: a header, one empty final stored block, the Adler-32 of nothing.
        let empty_zlib = [0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 1];
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(b"IDAT", &empty_zlib));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        })
    }

    fn encoded(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    /// Thumbnails `bytes` and checks the result is a decodable image of
    /// the type and size it claims.
    fn thumbnail_of(bytes: &[u8], format: ImageFormat) -> Thumbnail {
        let thumb = thumbnail(bytes, format).unwrap();
        let decoded = image::load_from_memory(&thumb.bytes).unwrap();
        let actual = image::guess_format(&thumb.bytes).unwrap();
        assert_eq!(
            ImageFormat::from_content_type(thumb.content_type).map(ImageFormat::codec),
            Some(actual)
        );
        assert_eq!(
            (decoded.width(), decoded.height()),
            (thumb.width, thumb.height)
        );
        thumb
    }

    fn size(width: u32, height: u32) -> Dimensions {
        Dimensions { width, height }
    }

    #[test]
    fn a_50000_pixel_square_is_refused_from_its_header() {
        let png = png_header(50_000, 50_000, 8, 6);
        let refused = MediaError::ImageTooLarge {
            width: 50_000,
            height: 50_000,
        };
        assert_eq!(probe(&png, ImageFormat::Png), Err(refused.clone()));
        // Decoding would allocate 10 GB before finding the data missing;
        // the refusal is the header check's, before any decode.
        assert_eq!(thumbnail(&png, ImageFormat::Png), Err(refused));
        // A prefix that stops before the image data is refused as well.
        assert_eq!(
            probe(&png[..33], ImageFormat::Png),
            Err(MediaError::UnreadableImage)
        );
    }

    #[test]
    fn a_50000_pixel_square_is_refused_in_every_format() {
        let [w0, w1] = 50_000u16.to_be_bytes();
        // JPEG: a real 8 × 8 one whose frame header (SOF0: marker, length,
        // precision, height, width) is made to say 50,000 × 50,000.
        let mut jpeg = encoded(
            &DynamicImage::ImageRgb8(gradient(8, 8)),
            image::ImageFormat::Jpeg,
        );
        let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[w0, w1, w0, w1]);
        // GIF: a real 8 × 8 one on a logical screen of 50,000 × 50,000,
        // which is the size a GIF decodes to.
        let mut gif = Vec::new();
        GifEncoder::new(&mut gif)
            .encode_frame(Frame::new(RgbaImage::from_pixel(8, 8, Rgba([9; 4]))))
            .unwrap();
        gif[6..10].copy_from_slice(&[w1, w0, w1, w0]);
        // WebP: a real 8 × 8 lossless bitstream behind an extended header
        // whose canvas is 50,000 a side (stored less one, in 24 bits).
        let mut lossless = Vec::new();
        WebPEncoder::new_lossless(&mut lossless)
            .encode(&[9; 8 * 8 * 4], 8, 8, ExtendedColorType::Rgba8)
            .unwrap();
        let side = (50_000u32 - 1).to_le_bytes();
        let vp8x = [&b"VP8X\x0a\0\0\0\0\0\0\0"[..], &side[..3], &side[..3]].concat();
        let body = [&b"WEBP"[..], &vp8x, &lossless[12..]].concat();
        let webp = [&b"RIFF"[..], &(body.len() as u32).to_le_bytes(), &body].concat();
        for (bytes, format) in [
            (jpeg, ImageFormat::Jpeg),
            (gif, ImageFormat::Gif),
            (webp, ImageFormat::WebP),
        ] {
            let refused = Some(MediaError::ImageTooLarge {
                width: 50_000,
                height: 50_000,
            });
            assert_eq!(probe(&bytes, format).err(), refused, "{format:?}");
            assert_eq!(thumbnail(&bytes, format).err(), refused, "{format:?}");
        }
    }

    #[test]
    fn each_bound_is_checked() {
        let too_long = png_header(MAX_SIDE + 1, 10, 8, 0);
        assert_eq!(
            probe(&too_long, ImageFormat::Png),
            Err(MediaError::ImageTooLarge {
                width: MAX_SIDE + 1,
                height: 10
            })
        );
        // 8,000 × 8,000 is within the side but 64 megapixels.
        assert!(matches!(
            probe(&png_header(8_000, 8_000, 8, 2), ImageFormat::Png),
            Err(MediaError::ImageTooLarge { .. })
        ));
        // 7,000 × 7,000 is 49 megapixels: in bounds at 8 bits a channel…
        assert_eq!(
            probe(&png_header(7_000, 7_000, 8, 6), ImageFormat::Png),
            Ok(size(7_000, 7_000))
        );
        assert_eq!(
            probe(&png_header(MAX_SIDE, 3_000, 8, 0), ImageFormat::Png),
            Ok(size(MAX_SIDE, 3_000))
        );
    }

    #[test]
    fn an_image_over_the_memory_budget_is_refused_before_decoding() {
        // …but 392 MB decoded at 16 bits a channel of RGBA.
        let deep = png_header(7_000, 7_000, 16, 6);
        assert_eq!(
            probe(&deep, ImageFormat::Png),
            Err(MediaError::ImageOverBudget)
        );
        assert_eq!(
            thumbnail(&deep, ImageFormat::Png),
            Err(MediaError::ImageOverBudget)
        );
        // Past the header check, the decoder's own limit refuses it too.
        assert_eq!(
            decode(&deep, ImageFormat::Png).map(|_| ()),
            Err(MediaError::ImageOverBudget)
        );
    }

    #[test]
    fn a_header_that_lies_about_its_data_is_unreadable() {
        // 2,000 × 2,000 declared, no pixel data: refused, not padded out.
        let liar = png_header(2_000, 2_000, 8, 2);
        assert_eq!(probe(&liar, ImageFormat::Png), Ok(size(2_000, 2_000)));
        assert_eq!(
            thumbnail(&liar, ImageFormat::Png),
            Err(MediaError::UnreadableImage)
        );
    }

    #[test]
    fn truncated_and_corrupt_images_are_refused_cleanly() {
        let photo = DynamicImage::ImageRgb8(gradient(300, 200));
        let png = encoded(&photo, image::ImageFormat::Png);
        assert_eq!(
            thumbnail(&png[..png.len() / 2], ImageFormat::Png),
            Err(MediaError::UnreadableImage)
        );
        let mut corrupt = png.clone();
        let middle = corrupt.len() / 2;
        corrupt[middle..middle + 16].fill(0x55);
        assert_eq!(
            thumbnail(&corrupt, ImageFormat::Png),
            Err(MediaError::UnreadableImage)
        );
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::WebP,
        ] {
            for bytes in [&b""[..], b"not an image at all", &png[..8]] {
                assert_eq!(
                    thumbnail(bytes, format),
                    Err(MediaError::UnreadableImage),
                    "{format:?} {bytes:?}"
                );
            }
        }
        // The bytes of one format are not read as another.
        assert_eq!(
            thumbnail(&png, ImageFormat::Jpeg),
            Err(MediaError::UnreadableImage)
        );
    }

    #[test]
    fn an_opaque_png_becomes_a_jpeg_that_fits_the_box() {
        let png = encoded(
            &DynamicImage::ImageRgb8(gradient(1_000, 500)),
            image::ImageFormat::Png,
        );
        assert_eq!(probe(&png, ImageFormat::Png), Ok(size(1_000, 500)));
        let thumb = thumbnail_of(&png, ImageFormat::Png);
        assert_eq!(thumb.content_type, "image/jpeg");
        assert_eq!((thumb.width, thumb.height), (320, 160));
        assert_eq!(thumb.original, size(1_000, 500));
    }

    #[test]
    fn an_avatar_is_the_centred_square_as_a_128_px_png() {
        // Left and right thirds red, the middle green: the square keeps
        // the middle.
        let wide = RgbImage::from_fn(300, 100, |x, _| {
            if (100..200).contains(&x) {
                Rgb([0, 255, 0])
            } else {
                Rgb([255, 0, 0])
            }
        });
        let jpeg = encoded(&DynamicImage::ImageRgb8(wide), image::ImageFormat::Jpeg);
        let made = avatar(&jpeg, ImageFormat::Jpeg).unwrap();
        let decoded = image::load_from_memory_with_format(&made, image::ImageFormat::Png)
            .unwrap()
            .to_rgb8();
        assert_eq!(decoded.dimensions(), (AVATAR_SIDE, AVATAR_SIDE));
        for (x, y) in [(2, 2), (64, 64), (125, 125)] {
            let Rgb([r, g, _]) = *decoded.get_pixel(x, y);
            assert!(g > 200 && r < 60, "({x}, {y}) is {r},{g}");
        }
        // A tiny one is enlarged; a bomb is refused from its header.
        let tiny = encoded(
            &DynamicImage::ImageRgb8(gradient(3, 5)),
            image::ImageFormat::Png,
        );
        assert!(avatar(&tiny, ImageFormat::Png).is_ok());
        assert!(avatar(&tiny[..tiny.len() / 2], ImageFormat::Png).is_err());
    }

    #[test]
    fn a_png_of_16_bits_a_channel_is_thumbnailed() {
        let deep = image::ImageBuffer::<Rgb<u16>, _>::from_fn(600, 300, |x, y| {
            Rgb([x as u16 * 100, y as u16 * 200, 40_000])
        });
        let png = encoded(&DynamicImage::ImageRgb16(deep), image::ImageFormat::Png);
        let thumb = thumbnail_of(&png, ImageFormat::Png);
        assert_eq!(
            (thumb.content_type, thumb.width, thumb.height),
            ("image/jpeg", 320, 160)
        );
    }

    #[test]
    fn a_transparent_png_stays_png() {
        let image = RgbaImage::from_fn(400, 800, |x, _| Rgba([200, 0, 0, (x % 256) as u8]));
        let png = encoded(&DynamicImage::ImageRgba8(image), image::ImageFormat::Png);
        let thumb = thumbnail_of(&png, ImageFormat::Png);
        assert_eq!(thumb.content_type, "image/png");
        assert_eq!((thumb.width, thumb.height), (160, 320));
        assert_eq!(thumb.original, size(400, 800));
    }

    #[test]
    fn a_jpeg_is_shrunk_and_a_small_one_kept_at_its_size() {
        let jpeg = encoded(
            &DynamicImage::ImageRgb8(gradient(640, 480)),
            image::ImageFormat::Jpeg,
        );
        assert_eq!(probe(&jpeg, ImageFormat::Jpeg), Ok(size(640, 480)));
        let thumb = thumbnail_of(&jpeg, ImageFormat::Jpeg);
        assert_eq!(
            (thumb.content_type, thumb.width, thumb.height),
            ("image/jpeg", 320, 240)
        );

        let small = encoded(
            &DynamicImage::ImageRgb8(gradient(40, 30)),
            image::ImageFormat::Jpeg,
        );
        let thumb = thumbnail_of(&small, ImageFormat::Jpeg);
        assert_eq!((thumb.width, thumb.height), (40, 30));
    }

    #[test]
    fn a_thin_strip_keeps_a_pixel_of_height() {
        let png = encoded(
            &DynamicImage::ImageRgb8(gradient(4_000, 3)),
            image::ImageFormat::Png,
        );
        let thumb = thumbnail_of(&png, ImageFormat::Png);
        assert_eq!((thumb.width, thumb.height), (320, 1));
    }

    #[test]
    fn an_animated_gif_gives_its_first_frame() {
        let frame = |colour: [u8; 4]| Frame::new(RgbaImage::from_pixel(100, 50, Rgba(colour)));
        let mut gif = Vec::new();
        GifEncoder::new(&mut gif)
            .encode_frames([frame([255, 0, 0, 255]), frame([0, 0, 255, 255])])
            .unwrap();
        assert_eq!(probe(&gif, ImageFormat::Gif), Ok(size(100, 50)));
        let thumb = thumbnail_of(&gif, ImageFormat::Gif);
        assert_eq!(
            (thumb.content_type, thumb.width, thumb.height),
            ("image/jpeg", 100, 50)
        );
        let pixel = image::load_from_memory(&thumb.bytes)
            .unwrap()
            .to_rgb8()
            .get_pixel(50, 25)
            .0;
        assert!(pixel[0] > 200 && pixel[2] < 60, "{pixel:?} is not red");
    }

    #[test]
    fn webp_opaque_and_transparent() {
        let webp = |image: &RgbaImage| {
            let mut bytes = Vec::new();
            WebPEncoder::new_lossless(&mut bytes)
                .encode(
                    image.as_raw(),
                    image.width(),
                    image.height(),
                    ExtendedColorType::Rgba8,
                )
                .unwrap();
            bytes
        };
        let opaque = webp(&RgbaImage::from_pixel(500, 1_000, Rgba([0, 128, 0, 255])));
        assert_eq!(probe(&opaque, ImageFormat::WebP), Ok(size(500, 1_000)));
        let thumb = thumbnail_of(&opaque, ImageFormat::WebP);
        assert_eq!(
            (thumb.content_type, thumb.width, thumb.height),
            ("image/jpeg", 160, 320)
        );

        let clear = webp(&RgbaImage::from_pixel(30, 20, Rgba([0, 0, 0, 0])));
        let thumb = thumbnail_of(&clear, ImageFormat::WebP);
        assert_eq!(
            (thumb.content_type, thumb.width, thumb.height),
            ("image/png", 30, 20)
        );
    }

    #[test]
    fn exif_rotation_turns_the_size_and_the_thumbnail() {
        // A TIFF header and one IFD entry: Orientation (0x0112) = 6,
        // "rotate 90° clockwise to show".
        let exif = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
        let stored = gradient(800, 400);
        let mut jpeg = Vec::new();
        let mut encoder = JpegEncoder::new_with_quality(&mut jpeg, 90);
        encoder.set_exif_metadata(exif).unwrap();
        encoder
            .write_image(stored.as_raw(), 800, 400, ExtendedColorType::Rgb8)
            .unwrap();
        assert_eq!(probe(&jpeg, ImageFormat::Jpeg), Ok(size(400, 800)));
        let thumb = thumbnail_of(&jpeg, ImageFormat::Jpeg);
        assert_eq!((thumb.width, thumb.height), (160, 320));
        assert_eq!(thumb.original, size(400, 800));
    }

    #[test]
    fn a_prefix_holding_the_header_is_enough_to_probe() {
        let png = encoded(
            &DynamicImage::ImageRgb8(gradient(900, 700)),
            image::ImageFormat::Png,
        );
        let jpeg = encoded(
            &DynamicImage::ImageRgb8(gradient(900, 700)),
            image::ImageFormat::Jpeg,
        );
        // 256 colours, so the encoder needs no quantising.
        let tiles = RgbaImage::from_fn(900, 700, |x, y| {
            Rgba([(x % 16 * 16) as u8, (y % 16 * 16) as u8, 0, 255])
        });
        let mut gif = Vec::new();
        GifEncoder::new(&mut gif)
            .encode_frame(Frame::new(tiles))
            .unwrap();
        for (bytes, format) in [
            (&png, ImageFormat::Png),
            (&jpeg, ImageFormat::Jpeg),
            (&gif, ImageFormat::Gif),
        ] {
            assert!(
                bytes.len() > 1024,
                "{format:?} is too small to test a prefix"
            );
            assert_eq!(
                probe(&bytes[..1024], format),
                Ok(size(900, 700)),
                "{format:?}"
            );
        }
        assert_eq!(
            probe(&png[..20], ImageFormat::Png),
            Err(MediaError::UnreadableImage)
        );
    }

    #[test]
    fn fit_keeps_the_aspect_and_never_enlarges() {
        assert_eq!(fit(320, 320), (320, 320));
        assert_eq!(fit(321, 320), (320, 319));
        assert_eq!(fit(1, 1), (1, 1));
        assert_eq!(fit(MAX_SIDE, 1), (320, 1));
        assert_eq!(fit(3_000, 4_000), (240, 320));
        assert_eq!(fit(1_000, 333), (320, 107));
    }
}
