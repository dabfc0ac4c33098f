"""Benchmark: the image predictor's decode step, today's integer decoding against float32.

Since 2026-12-06 encoded images decode to integers (uint16 for a 16-bit PNG, else uint8,
WebP at its own channel count) and are scaled to float32 afterwards
(`ktlite.vision.preprocessor.decode_image`, one `tf.case` on the file's header); from
2026-12-05 (commit c9dbd2a) they decoded straight to float32, which in TensorFlow 2.21
kills the process on a top-down BMP and refuses WebP. This times both on the same encoded
batch, in one run, as the predictor runs them (one `tf.function` of `tf.map_fn` over the
batch), and prints the ratio. No data needed: the images are random PNGs made here.

Usage:
    python benchmarks/image_decode.py [--images 2000] [--size 28] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from ktlite.vision.preprocessor import ImagePreprocessor, _luminance


def float32_route(preproc: ImagePreprocessor):
    """The decode step as it was (2026-12-05): TensorFlow's float32 decoding."""
    def decode_one(data: tf.Tensor) -> tf.Tensor:
        def decode(channels: int) -> tf.Tensor:
            return tf.io.decode_image(data, channels=channels, dtype=tf.float32,
                                      expand_animations=False)

        image = _luminance(decode(3)) if preproc.channels == 1 else decode(preproc.channels)
        return preproc._resize(image[None])[0]

    return decode_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = tf.constant([
        tf.io.encode_png(rng.integers(0, 256, (args.size, args.size, 1), dtype=np.uint8)).numpy()
        for _ in range(args.images)
    ])
    for channels in (1, 3):
        preproc = ImagePreprocessor(args.size, channels=channels)
        spec = tf.TensorSpec((args.size, args.size, channels), tf.float32)
        routes = {
            "float32 (before)": tf.function(
                lambda b, f=float32_route(preproc): tf.map_fn(f, b, fn_output_signature=spec)),
            "integer (now)": tf.function(
                lambda b, f=preproc._decode_one: tf.map_fn(f, b, fn_output_signature=spec)),
        }
        times: dict[str, list[float]] = {name: [] for name in routes}
        for route in routes.values():
            route(batch)  # trace
        for _ in range(args.repeats):  # interleaved, so drift hits both alike
            for name, route in routes.items():
                start = time.perf_counter()
                route(batch)
                times[name].append(time.perf_counter() - start)
        before, now = (float(np.median(t)) for t in times.values())
        print(f"channels={channels}: float32 route {args.images / before:,.0f} images/s, "
              f"integer route {args.images / now:,.0f} images/s, time ratio {now / before:.2f}x")


if __name__ == "__main__":
    main()
