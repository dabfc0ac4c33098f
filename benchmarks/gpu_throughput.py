"""Training throughput of a BERT-base-sized encoder through ktlite, bfloat16 + XLA.

The model is `ktlite.models.Transformer` at BERT-base size (12 layers, width 768, 12 heads,
feed-forward 3072, sequence 512, WordPiece-sized vocabulary 30522), trained with
`get_learner(..., mixed_precision="bfloat16", jit_compile=True).fit_onecycle` on random
token ids. Reported:

- tokens/s: `batch * seq_len * steps / seconds`, median over the timed epochs (the first
  epoch, which compiles, is skipped);
- model FLOPs per token: `6 * N + 12 * layers * seq_len * width`, with N the
  non-embedding parameters (the usual estimate: forward + backward matmuls, plus the
  attention scores and weighted sums), so no recomputation is counted;
- MFU: achieved model FLOP/s divided by the device's *measured* bfloat16 peak, taken as
  the best rate of a large XLA-compiled bfloat16 matmul chain on the same device.

The target on an H100 is >= 40% MFU. `--tiny` shrinks everything so the script runs on a
CPU in a few seconds (a smoke test of the code path; its MFU means nothing).

Run:
    python benchmarks/gpu_throughput.py                  # needs a GPU
    python benchmarks/gpu_throughput.py --batch 48 --steps 30
    python benchmarks/gpu_throughput.py --tiny           # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BERT_BASE = {"layers": 12, "width": 768, "heads": 12, "ff": 3072, "seq": 512, "vocab": 30522}
TINY = {"layers": 2, "width": 64, "heads": 4, "ff": 256, "seq": 64, "vocab": 1000}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="global batch (sequences)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs; the first is skipped")
    parser.add_argument("--peak-size", type=int, default=8192, help="matmul size for the peak")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run with a tiny model")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch, args.steps, args.epochs, args.peak_size = 8, 4, 2, 512
    return args


def measure_peak_flops(size: int, repeats: int = 5, chain: int = 10) -> float:
    """Best bfloat16 matmul FLOP/s of `chain` dependent size x size products under XLA."""
    import tensorflow as tf

    a = tf.random.normal((size, size), dtype=tf.float32)
    a = tf.cast(a / tf.sqrt(float(size)), tf.bfloat16)
    b = tf.cast(tf.random.normal((size, size)) / tf.sqrt(float(size)), tf.bfloat16)

    @tf.function(jit_compile=True)
    def matmuls(x):
        for _ in range(chain):
            x = tf.matmul(x, b)
        return tf.reduce_sum(tf.cast(x[:1, :1], tf.float32))

    matmuls(a).numpy()  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmuls(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 * chain / best


def non_embedding_params(cfg: dict) -> int:
    """Parameters of the encoder blocks (attention, feed-forward, layer norms)."""
    d, ff = cfg["width"], cfg["ff"]
    per_layer = 4 * d * d + 4 * d + 2 * d * ff + ff + d + 4 * d
    return cfg["layers"] * per_layer


def flops_per_token(cfg: dict) -> float:
    return 6.0 * non_embedding_params(cfg) + 12.0 * cfg["layers"] * cfg["seq"] * cfg["width"]


def run(args) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from ktlite import get_learner
    from ktlite.models import Transformer

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.tiny:
        raise SystemExit("No GPU visible: this benchmark measures GPU throughput. Use --tiny "
                         "for a CPU smoke run of the code path.")
    cfg = TINY if args.tiny else BERT_BASE
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") \
        if gpus else (platform.processor() or platform.machine())
    peak = measure_peak_flops(args.peak_size)

    keras.utils.set_random_seed(0)
    model = Transformer(cfg["vocab"], cfg["seq"], embed_dim=cfg["width"], num_heads=cfg["heads"],
                        num_layers=cfg["layers"], ff_dim=cfg["ff"], dropout=0.1,
                        num_outputs=2, pooling="first")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.integers(1, cfg["vocab"], size=(n, cfg["seq"])).astype("int32")
    y = rng.integers(0, 2, size=(n,)).astype("int32")
    learner = get_learner(model, (x, y), batch_size=args.batch, mixed_precision="bfloat16",
                          jit_compile=True, verbose=0)

    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    learner.fit_onecycle(1e-4, args.epochs, callbacks=[EpochTimer()], verbose=0)
    epoch = statistics.median(times[1:]) if len(times) > 1 else times[0]
    tokens_per_s = args.batch * cfg["seq"] * args.steps / epoch
    achieved = tokens_per_s * flops_per_token(cfg)
    return {
        "device": device,
        "config": "tiny (CPU smoke run)" if args.tiny else "BERT-base",
        "batch": args.batch,
        "seq_len": cfg["seq"],
        "steps_per_epoch": args.steps,
        "timed_epochs": max(1, len(times) - 1),
        "epoch_seconds": [round(t, 3) for t in times],
        "step_ms": 1000.0 * epoch / args.steps,
        "tokens_per_s": tokens_per_s,
        "model_tflops_per_s": achieved / 1e12,
        "measured_peak_tflops_per_s": peak / 1e12,
        "mfu": achieved / peak,
        "precision": "mixed_bfloat16",
        "jit_compile": bool(learner.model.jit_compile),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2))
    print(f"\n| device | model | batch x seq | step ms | tokens/s | model TFLOP/s | "
          f"measured peak TFLOP/s | MFU |\n|---|---|---|---|---|---|---|---|\n"
          f"| {result['device']} | {result['config']} | {result['batch']} x {result['seq_len']} "
          f"| {result['step_ms']:.1f} | {result['tokens_per_s']:.0f} | "
          f"{result['model_tflops_per_s']:.2f} | {result['measured_peak_tflops_per_s']:.2f} | "
          f"{100 * result['mfu']:.1f}% |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
