"""Benchmark: the image predictor's decode step, float32 decoding against the uint8 route.

Since 2026-12-05 (commit c9dbd2a) encoded images decode straight to float32 and colour
becomes gray by luminance weights that sum to 1; before, they decoded to uint8 and were
converted in uint8. This times both on the same encoded batch, in one run, as the
predictor runs them (one `tf.function` of `tf.map_fn` over the batch), and prints the
ratio. No data needed: the images are random PNGs made here.

Usage:
    python benchmarks/image_decode.py [--images 2000] [--size 28] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from ktlite.vision.preprocessor import ImagePreprocessor


def uint8_route(preproc: ImagePreprocessor):
    """The decode step as it was: uint8 decoding, gray converted in uint8."""
    def decode_one(data: tf.Tensor) -> tf.Tensor:
        def decode(channels: int) -> tf.Tensor:
            return tf.io.decode_image(data, channels=channels, dtype=tf.uint8,
                                      expand_animations=False)

        if preproc.channels == 1:
            image = tf.image.rgb_to_grayscale(decode(3))
        else:
            image = decode(preproc.channels)
        image = tf.cast(image, tf.float32) * (1.0 / 255.0)
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
            "uint8 (before)": tf.function(
                lambda b, f=uint8_route(preproc): tf.map_fn(f, b, fn_output_signature=spec)),
            "float32 (now)": tf.function(
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
        print(f"channels={channels}: uint8 route {args.images / before:,.0f} images/s, "
              f"float32 route {args.images / now:,.0f} images/s, time ratio {now / before:.2f}x")


if __name__ == "__main__":
    main()
