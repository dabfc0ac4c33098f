"""What an encoded image's bytes say before decoding: its format, size and whether it is whole.

The predictor checks uploads with these before TensorFlow decodes them, so that an empty,
truncated or unknown file is refused with a reason, and so that a small file that decodes
to a huge image (a few kilobytes of PNG can hold a 16,000 x 16,000 black image, gigabytes
once decoded) is refused before any memory is spent on it.
"""

from __future__ import annotations

import struct

__all__ = ["MAX_PASS_PIXELS", "MAX_PIXELS", "decoded_pixels", "format_problem",
           "image_dimensions"]

# The largest image the predictor decodes: 50 megapixels (a 48 MP phone photo fits; it
# decodes to 150 MB of RGB and about 600 MB of float32 before resizing).
MAX_PIXELS = 50_000_000
# The most pixels one forward pass of the predictor decodes, whatever its batch size: about
# 1.2 GB of float32 RGB at the peak, so a batch of large uploads (the HTTP app merges
# several requests into one batch) is cut into several passes instead of decoded at once.
MAX_PASS_PIXELS = 2 * MAX_PIXELS

# JPEG start-of-frame markers: every 0xC0-0xCF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_BARE = frozenset({0x01, *range(0xD0, 0xDA)})
# A GIF file's first six bytes.
_GIF = (b"GIF87a", b"GIF89a")


def format_problem(data: bytes) -> str | None:
    """Says what is wrong with encoded image bytes, or `None` when they look whole.

    The signature must be one TensorFlow decodes (PNG, JPEG, GIF, BMP, WebP) and the file
    must hold its end: PNG's `IEND` chunk, JPEG's end-of-image marker, GIF's closing
    `;`, or the length a BMP or WebP header declares. Bytes after a PNG's or JPEG's end (a
    phone's "motion photo" appends a video to the JPEG) are allowed, as TensorFlow ignores
    them. A BMP must also be one TensorFlow decodes right: uncompressed 24- or 32-bit, or
    8-bit with a gray palette (TensorFlow reads an 8-bit BMP's palette indices as gray
    levels, so one with a colour palette would decode to a wrong, darker image). 1-, 4-
    and 16-bit, colour-palette, compressed and OS/2 BMPs are refused with a reason that
    says to convert them to PNG.

    Args:
        data: the encoded file, non-empty.

    Returns:
        A short reason (`"a truncated PNG"`, `"an 8-bit BMP with a colour palette, ..."`),
        or `None`.

    Example:
        >>> format_problem(b"not an image")
        'not a PNG, JPEG, GIF, BMP or WebP file'
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if b"\x00\x00\x00\x00IEND" in data[8:] else "a truncated PNG"
    if data.startswith(b"\xff\xd8"):
        return None if b"\xff\xd9" in data[2:] else "a truncated JPEG"
    if data[:6] in _GIF:
        return None if data.rstrip(b"\x00")[-1:] == b";" else "a truncated GIF"
    if data.startswith(b"BM") and len(data) >= 6:
        size = struct.unpack("<I", data[2:6])[0]
        return _bmp_problem(data) if len(data) >= size else "a truncated BMP"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        size = struct.unpack("<I", data[4:8])[0]
        return None if len(data) >= size + 8 else "a truncated WebP"
    return "not a PNG, JPEG, GIF, BMP or WebP file"


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Reads `(width, height)` from an encoded image's header, without decoding it.

    Args:
        data: an encoded PNG, JPEG, GIF, BMP or WebP file.

    Returns:
        `(width, height)` of the decoded image, or `None` when the header gives no size.
        Every file TensorFlow decodes gives one (a JPEG's frame header is found past the
        stray and fill bytes its decoder skips), so the predictor refuses a file without
        one. A GIF's is its largest frame's width and height, which TensorFlow decodes it
        to, whatever its logical screen says.

    Example:
        >>> image_dimensions(png_bytes)
        (28, 28)
    """
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data[:6] in _GIF:
            frames = _gif_frames(data)
            return (max(w for w, _ in frames), max(h for _, h in frames)) if frames else None
        if data.startswith(b"BM"):
            header = struct.unpack("<I", data[14:18])[0]
            if header == 12:  # OS/2 BITMAPCOREHEADER
                return struct.unpack("<HH", data[18:22])
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
    except (struct.error, IndexError):  # a header cut short: decoding would refuse the file
        return None
    return None


def decoded_pixels(data: bytes) -> int | None:
    """How many pixels decoding an encoded image holds, read from its headers.

    That is width x height, or for a GIF the larger of that and the pixels of all its frames
    together: TensorFlow's GIF decoder reads every frame before it returns the first.

    Args:
        data: an encoded PNG, JPEG, GIF, BMP or WebP file.

    Returns:
        The count, or `None` when `image_dimensions` gives no size.

    Example:
        >>> decoded_pixels(png_bytes)
        784
    """
    if data[:6] in _GIF:  # its frames read once, for the largest and for them all
        try:
            frames = _gif_frames(data)
        except (struct.error, IndexError):  # a header cut short, as in `image_dimensions`
            return None
        if not frames:
            return None
        largest = max(w for w, _ in frames) * max(h for _, h in frames)
        return max(largest, sum(w * h for w, h in frames))
    dimensions = image_dimensions(data)
    return None if dimensions is None else dimensions[0] * dimensions[1]


_CONVERT = "convert it to PNG"


def _bmp_problem(data: bytes) -> str | None:
    """Why TensorFlow cannot decode a whole BMP right, or `None` (then decoding decides).

    TensorFlow's BMP decoder reads the pixels raw: 3 or 4 bytes a pixel, or 1 byte read as
    the gray level, whatever the header says about a palette or compression.
    """
    try:
        header, = struct.unpack("<I", data[14:18])
        if header < 40:  # OS/2's shorter headers hold the fields at other places
            return f"an OS/2 BMP, which TensorFlow cannot decode: {_CONVERT}"
        bits, compression = struct.unpack("<HI", data[28:34])
        colours, = struct.unpack("<I", data[46:50])
    except struct.error:  # a header cut short: decoding will refuse the file
        return None
    if compression not in (0, 3):  # BI_RGB, BI_BITFIELDS; not RLE, JPEG or PNG inside
        return f"a compressed BMP, which TensorFlow cannot decode: {_CONVERT}"
    if bits == 8:
        # A gray palette (entry i is blue, green, red = i) is the only one read right.
        count = colours or 256
        table = data[14 + header:14 + header + 4 * count]
        gray = count <= 256 and table[0::4] == table[1::4] == table[2::4] == bytes(range(count))
        return None if gray else (
            "an 8-bit BMP with a colour palette, which TensorFlow would read as gray palette "
            f"indices: {_CONVERT}"
        )
    if bits not in (24, 32):
        return f"a {bits}-bit BMP, which TensorFlow cannot decode: {_CONVERT}"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Markers are found as libjpeg finds them, so that no byte the decoder passes over
    # hides the frame header from this reader: it skips bytes other than 0xFF before a
    # marker, 0xFF fill bytes, and 0xFF 0x00 pairs.
    i = 2
    while (i := data.find(b"\xff", i)) >= 0:
        while data[i + 1:i + 2] == b"\xff":  # fill bytes
            i += 1
        marker = data[i + 1:i + 2]
        if not marker:
            return None
        if marker[0] == 0x00 or marker[0] in _JPEG_BARE:
            i += 2
            continue
        if marker[0] in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if marker[0] == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _gif_frames(data: bytes) -> list[tuple[int, int]] | None:
    """The `(width, height)` of each frame of a GIF, `None` for a GIF giflib cannot read."""
    flags = data[10]
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    frames = []
    while i < len(data) and data[i] != 0x3B:  # up to the trailer
        if data[i] == 0x2C:  # an image descriptor, its local colour table, its LZW code size
            frames.append(struct.unpack("<HH", data[i + 5:i + 9]))
            flags = data[i + 9]
            i += 11 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        elif data[i] == 0x21:  # an extension: a label, then sub-blocks
            i += 2
        else:
            return None
        while data[i]:  # sub-blocks, each led by its length, up to an empty one
            i += 1 + data[i]
        i += 1
    return frames or None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None
