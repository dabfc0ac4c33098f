"""Masked-LM training step: prediction slots sized per batch against a fixed `num_predictions`.

`TokenMasker` gives each batch as many prediction slots as its most-masked text needs. The
baseline pads every batch to `TokenMasker.num_predictions` slots (15% of `maxlen - 1`), as
ktlite did before: the masked-LM head then projects padding slots onto the whole vocabulary.
Both run the same `text.pretrain` learner settings on the same texts (length-bucketed
batches, one one-cycle epoch each); the script prints the milliseconds a step of each, timed
inside the epoch after the first 50 steps (the fit call's set-up and the tracing of each new
batch shape are not steps), their ratio, and the epoch's masked-token loss (the same data,
so the losses should agree within noise: the padding slots carry no weight).

Data: `wordnet_lexnames_train.csv.gz` (columns id, label, text), built from WordNet 3.0 by
`make_wordnet_lexnames.py` (see `benchmarks/pretrain.py`).

Usage:
    python benchmarks/masked_lm_step.py --train ../shared/data/wordnet_lexnames_train.csv.gz
    python benchmarks/masked_lm_step.py --train ... --steps 300 --batch-size 128
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from make_wordnet_lexnames import read_split  # noqa: E402


def step_ms(texts: list[str], preproc, padded: bool, steps: int,
            batch_size: int) -> tuple[float, float]:
    """Milliseconds a training step, and the training loss of the timed epoch."""
    import keras
    import tensorflow as tf

    from ktlite import text

    keras.utils.set_random_seed(0)
    learner = text.pretrain(texts, preproc, batch_size=batch_size, seed=0, verbose=0)
    masker = learner.masker
    if padded:
        shipped = masker.mask

        def mask_padded(ids):
            inputs, targets, weights = shipped(ids)
            extra = [[0, 0], [0, masker.num_predictions - tf.shape(targets)[1]]]
            inputs = {"token_ids": inputs["token_ids"],
                      "mask_positions": tf.pad(inputs["mask_positions"], extra)}
            return inputs, tf.pad(targets, extra), tf.pad(weights, extra)

        masker.mask = mask_padded

    class StepClock(keras.callbacks.Callback):
        """Times the steps after the first `warm` (tracing, one per new batch shape)."""

        warm = min(50, steps // 2)

        def on_train_batch_begin(self, batch, logs=None):
            if batch == self.warm:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.end = time.perf_counter()

    clock = StepClock()
    history = learner.fit_onecycle(1e-3, 1, steps_per_epoch=steps, callbacks=[clock],
                                   verbose=0)
    timed = steps - clock.warm
    return (clock.end - clock.start) / timed * 1e3, float(history.history["loss"][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300,
                        help="steps per variant; the first min(50, steps // 2) (tracing) "
                             "are not timed")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if args.steps < 2 or args.batch_size < 1:
        parser.error("--steps must be >= 2 and --batch-size >= 1.")
    from ktlite import text

    texts, _ = read_split(args.train)
    preproc = text.TextPreprocessor().fit_vocab(texts)  # one vocabulary for both variants
    padded_ms, padded_loss = step_ms(texts, preproc, True, args.steps, args.batch_size)
    sized_ms, sized_loss = step_ms(texts, preproc, False, args.steps, args.batch_size)
    print(f"{len(texts):,} texts, batch {args.batch_size}, {args.steps} steps each")
    print(f"padded to num_predictions: {padded_ms:6.1f} ms a step, loss {padded_loss:.3f}")
    print(f"slots sized per batch:     {sized_ms:6.1f} ms a step, loss {sized_loss:.3f}")
    print(f"speed-up: {padded_ms / sized_ms:.2f}x")


if __name__ == "__main__":
    main()
