"""Tests for ktlite.vision.formats: what an encoded image's header says, before decoding."""

import struct

import numpy as np
import pytest
import tensorflow as tf

from conftest import encode_bmp
from ktlite.vision.formats import decoded_pixels, format_problem, image_dimensions


def gif(screen, frames):
    """A GIF's headers: a logical screen and frames of the given sizes, each with one byte of
    LZW data (enough to read sizes from; too little to decode)."""
    blocks = b"".join(b"!\xf9\x04\x00\x00\x00\x00\x00"  # a graphic control extension
                      + b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02\x01\x00\x00"
                      for w, h in frames)
    return b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0) + blocks + b";"


def test_png_jpeg_gif_and_bmp_sizes_are_read_from_their_headers():
    image = np.zeros((7, 12, 3), "uint8")  # 12 wide, 7 high
    assert image_dimensions(tf.io.encode_png(image).numpy()) == (12, 7)
    assert image_dimensions(tf.io.encode_jpeg(image).numpy()) == (12, 7)
    assert image_dimensions(tf.io.encode_jpeg(image, progressive=True).numpy()) == (12, 7)
    assert image_dimensions(gif((300, 200), [(300, 200)])) == (300, 200)
    bottom_up = b"BM" + bytes(12) + struct.pack("<Iii", 40, 640, -480) + bytes(30)
    assert image_dimensions(bottom_up) == (640, 480)
    os2 = b"BM" + bytes(12) + struct.pack("<IHH", 12, 64, 32) + bytes(10)
    assert image_dimensions(os2) == (64, 32)


def test_webp_sizes_are_read_from_each_kind_of_first_chunk():
    def riff(chunk, body):
        return b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBP" + chunk + body

    lossless = riff(b"VP8L", struct.pack("<I", 5) + b"\x2f"
                    + struct.pack("<I", 29 | (19 << 14)) + bytes(8))
    assert image_dimensions(lossless) == (30, 20)
    extended = riff(b"VP8X", struct.pack("<I", 10) + bytes(4) + (999).to_bytes(3, "little")
                    + (499).to_bytes(3, "little"))
    assert image_dimensions(extended) == (1000, 500)
    lossy = riff(b"VP8 ", struct.pack("<I", 10) + bytes(3) + b"\x9d\x01\x2a"
                 + struct.pack("<HH", 320, 240))
    assert image_dimensions(lossy) == (320, 240)


def test_a_jpeg_size_is_found_past_the_bytes_its_decoder_skips():
    # libjpeg passes over stray bytes before a marker, 0xFF fill bytes and 0xFF 0x00 pairs,
    # so a file with them decodes, and its size must still be read for the pixel limit.
    jpeg = tf.io.encode_jpeg(np.zeros((7, 12, 1), "uint8")).numpy()
    app0_end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    for junk in (b"\x00", b"abc", b"\xff\xff", b"\xff\x00\x17"):
        edited = jpeg[:app0_end] + junk + jpeg[app0_end:]
        assert tf.io.decode_jpeg(edited).shape == (7, 12, 1)
        assert image_dimensions(edited) == (12, 7)


def test_a_gif_decodes_to_its_largest_frame_and_holds_all_its_frames():
    # TensorFlow decodes a GIF to its frames' largest width and height, whatever its
    # logical screen says, and giflib reads every frame before the first is returned.
    assert image_dimensions(gif((8, 8), [(6000, 6000)])) == (6000, 6000)
    assert decoded_pixels(gif((8, 8), [(6000, 6000)])) == 36_000_000
    assert image_dimensions(gif((8, 8), [(100, 10), (10, 100)])) == (100, 100)
    assert decoded_pixels(gif((8, 8), [(100, 10), (10, 100)])) == 10_000
    assert decoded_pixels(gif((300, 200), [(300, 200)] * 40)) == 2_400_000
    made = tf.io.decode_gif(tf.constant(_TWO_FRAMES)).shape
    assert image_dimensions(_TWO_FRAMES) == (made[2], made[1]) == (1, 1)
    assert decoded_pixels(_TWO_FRAMES) == made[0] == 2
    assert decoded_pixels(tf.io.encode_png(np.zeros((7, 12, 1), "uint8")).numpy()) == 84


# Two 1x1 frames, the first with a global colour table, the second with a local one.
_TWO_FRAMES = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
               b"!\xf9\x04\x01\x00\x00\x00\x00"
               b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00"
               b",\x00\x00\x00\x00\x01\x00\x01\x00\x80\x00\x00\x00\xff\xff\xff"
               b"\x02\x02D\x01\x00;")


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00",   # cut inside the header
    b"\xff\xd8\xff\xda\x00\x02",    # scan before any frame header
    b"\xff\xd8\x00\x00",            # not a marker where one must be
    b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",  # no frame
    b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x00;",  # a record giflib does not know
    b"RIFF\x00\x00\x00\x00WEBPVP8Z",
    b"just text",
])
def test_a_header_that_does_not_say_gives_none(data):
    assert image_dimensions(data) is None


def test_format_problems_name_the_format_and_allow_bytes_after_the_end():
    png = tf.io.encode_png(np.zeros((4, 4, 1), "uint8")).numpy()
    jpeg = tf.io.encode_jpeg(np.zeros((4, 4, 1), "uint8")).numpy()
    assert format_problem(png + b"trailer") is None and format_problem(jpeg + b"xx") is None
    assert format_problem(png[:-12]) == "a truncated PNG"
    assert format_problem(jpeg[:-2]) == "a truncated JPEG"
    assert format_problem(b"GIF89a" + bytes(10)) == "a truncated GIF"
    assert format_problem(b"%PDF-1.4") == "not a PNG, JPEG, GIF, BMP or WebP file"


def _edited(data, offset, layout, value):
    """`data` with one header field overwritten."""
    data = bytearray(data)
    struct.pack_into(layout, data, offset, value)
    return bytes(data)


def test_bmps_tensorflow_decodes_right_pass_either_way_up():
    gray = np.arange(12, dtype="uint8").reshape(3, 4)
    for image in (gray, np.zeros((3, 5, 3), "uint8"), np.zeros((3, 4, 4), "uint8")):
        for top_down in (False, True):
            assert format_problem(encode_bmp(image, top_down)) is None
    short_ramp = np.repeat(np.arange(12), 3).reshape(12, 3)  # a gray palette of 12 entries
    assert format_problem(encode_bmp(gray, palette=short_ramp)) is None


_COLOUR = encode_bmp(np.zeros((2, 2), "uint8"), palette=[[200, 30, 60], [20, 180, 90]])
_GRAY = encode_bmp(np.zeros((2, 2), "uint8"))
_RGB = encode_bmp(np.zeros((2, 2, 3), "uint8"))


@pytest.mark.parametrize("data, reason", [
    (_COLOUR, "an 8-bit BMP with a colour palette, which TensorFlow would read as gray "
              "palette indices"),
    (_edited(_GRAY, 54 + 4 * 7, "<B", 9), "an 8-bit BMP with a colour palette"),  # one entry
    (_edited(_GRAY, 46, "<I", 300), "an 8-bit BMP with a colour palette"),  # 300 colours
    (_edited(_GRAY, 28, "<H", 1), "a 1-bit BMP, which TensorFlow cannot decode"),
    (_edited(_GRAY, 28, "<H", 4), "a 4-bit BMP, which TensorFlow cannot decode"),
    (_edited(_RGB, 28, "<H", 16), "a 16-bit BMP, which TensorFlow cannot decode"),
    (_edited(_GRAY, 30, "<I", 1), "a compressed BMP, which TensorFlow cannot decode"),  # RLE8
    (_edited(_RGB, 14, "<I", 12), "an OS/2 BMP, which TensorFlow cannot decode"),
], ids=["palette", "one-colour-off", "300-colours", "1-bit", "4-bit", "16-bit", "rle8", "os2"])
def test_bmps_tensorflow_cannot_decode_right_are_refused_saying_to_convert_them(data, reason):
    problem = format_problem(data)
    assert problem is not None and problem.startswith(reason), problem
    assert problem.endswith(": convert it to PNG")
