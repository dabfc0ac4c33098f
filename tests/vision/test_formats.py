"""Tests for ktlite.vision.formats: what an encoded image's header says, before decoding."""

import struct

import numpy as np
import pytest
import tensorflow as tf

from conftest import encode_bmp
from ktlite.vision.formats import format_problem, image_dimensions


def test_png_jpeg_gif_and_bmp_sizes_are_read_from_their_headers():
    image = np.zeros((7, 12, 3), "uint8")  # 12 wide, 7 high
    assert image_dimensions(tf.io.encode_png(image).numpy()) == (12, 7)
    assert image_dimensions(tf.io.encode_jpeg(image).numpy()) == (12, 7)
    assert image_dimensions(tf.io.encode_jpeg(image, progressive=True).numpy()) == (12, 7)
    gif = b"GIF89a" + struct.pack("<HH", 300, 200) + bytes(20) + b";"
    assert image_dimensions(gif) == (300, 200)
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


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00",   # cut inside the header
    b"\xff\xd8\xff\xda\x00\x02",    # scan before any frame header
    b"\xff\xd8\x00\x00",            # not a marker where one must be
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
