"""Translation benchmark: quality against two baselines, and decoding speed.

Data: English -> Italian Debian package synopses, `debian_en_it_{train,val,test}.csv.gz`
(columns `package`, `source`, `en`, `it`). They are built by `make_debian_pairs.py`, kept
beside the data in the shared data folder (its docstring says how: install Debian's
translated package descriptions, then run `python make_debian_pairs.py OUT_DIR`). Pass the
folder with `--data-dir` (default `../shared/data` relative to the repository).

Parts:
    quality  the three lines with every default (`pairs_from_csv`, `translation_model`,
             `get_learner`, `lr_find`, `fit_onecycle`), trained for `--minutes`, scored on
             the test pairs with sacrebleu (BLEU, chrF; greedy and beam 4), beside the
             translation-memory baseline of the data's README (BLEU 22.1 / chrF 46.4) and a
             plain Keras encoder-decoder written the way Keras' English-to-Spanish example
             does it (TextVectorization, one encoder and one decoder block, RMSprop,
             greedy decoding that re-runs the model per token), trained for the same time.
    speed    decoding cost on a default-size model: greedy with vs without the key/value
             cache at 32 output tokens, beam 4 vs greedy, sentences/s at batch 1 and 64.
    steps    training cost with length bucketing on (the default) vs off: the default
             model and batch size, one-cycle fits alternated on, off, on, off; the median
             ms a step (tracing steps excluded; the better of two tries) and the ratio.
    detok    the ceiling that tokenization and detokenization alone put on BLEU: the test
             targets tokenized and written back (what a perfect model would output),
             scored against themselves, with today's rules beside those before commit
             9c33033 (every dash glued, numbers and quotes spaced; vocabulary without
             the spaced-dash mark). No training; about a minute.

Examples:
    python benchmarks/translation.py speed
    python benchmarks/translation.py steps                      # ~4 minutes
    python benchmarks/translation.py detok                      # ~1 minute
    python benchmarks/translation.py quality --quick            # ~5 minutes
    python benchmarks/translation.py quality --minutes 20       # the recorded run
    python benchmarks/translation.py quality --minutes 10 --skip-keras --backbone bb
                                    # the encoder from a `ktlite.text.pretrain` backbone
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import re
import string
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MEMORY_BASELINE = {"bleu": 22.1, "chrf": 46.4}


def read_pairs(data_dir: Path, split: str, limit: int | None = None) -> tuple[list, list]:
    path = Path(data_dir) / f"debian_en_it_{split}.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = rows[:limit] if limit else rows
    return [r["en"] for r in rows], [r["it"] for r in rows]


def timed(fns: list, rounds: int = 7) -> list[float]:
    """Median seconds of each function over `rounds` rounds that call them in turn, so a
    machine's drift falls on all of them alike (each is traced and warmed up first)."""
    for fn in fns:
        fn()
    seconds = [[] for _ in fns]
    for _ in range(rounds):
        for fn, times in zip(fns, seconds):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return [float(np.median(times)) for times in seconds]


# ----------------------------------------------------------------------------- speed
def speed(args: argparse.Namespace) -> None:
    import tensorflow as tf

    from ktlite import seq2seq
    from ktlite.seq2seq.decoding import DecodingOptions, decode
    from ktlite.seq2seq.models import EncoderDecoderSteps

    en, it = read_pairs(args.data_dir, "train", args.train_size or 5000)
    # target_maxlen 48 leaves room for 32 output tokens; the end token is never matched
    # (end id -1), so every sentence decodes exactly 32 tokens.
    _, _, preproc = seq2seq.pairs_from_array(en, it, x_test=en[:2], y_test=it[:2],
                                             target_maxlen=48, verbose=0)
    model = seq2seq.translation_model("transformer", None, preproc=preproc, verbose=0)
    steps = EncoderDecoderSteps(model)
    sources = tf.constant(read_pairs(args.data_dir, "test", 64)[0])
    print(f"model: {model.count_params():,} parameters, vocabulary {preproc.target_vocab_size}")

    def runner(options: DecodingOptions, n: int, length: int = 32):
        ids = preproc.tokenize_source(sources[:n])

        @tf.function
        def run(ids):
            rows = tf.shape(ids)[0]
            return decode(steps, steps.encode(ids), tf.fill([rows, 1], 2),
                          tf.ones([rows], tf.int32), length, -1, options, banned_ids=(0, 2))

        return lambda: run(ids).numpy()

    rows = []
    for batch in (1, 64):
        cached, uncached, beam = timed([
            runner(DecodingOptions(), batch),
            runner(DecodingOptions(use_cache=False), batch),
            runner(DecodingOptions(method="beam", beam_width=4), batch),
        ])
        rows.append((batch, cached, uncached, beam))
        print(f"batch {batch:>2}: greedy+cache {cached * 1000:7.1f} ms  "
              f"no cache {uncached * 1000:7.1f} ms  (speed-up {uncached / cached:4.1f}x)  "
              f"beam 4 {beam * 1000:7.1f} ms ({beam / cached:4.1f}x greedy)  "
              f"{batch / cached:6.1f} sentences/s greedy, {batch / beam:6.1f} beam 4")


# ----------------------------------------------------------------------------- steps
def steps(args: argparse.Namespace) -> None:
    import keras

    import ktlite
    from ktlite import seq2seq
    from ktlite.bucketing import round_width

    en, it = read_pairs(args.data_dir, "train", args.train_size)
    trn, _, preproc = seq2seq.pairs_from_array(en, it, x_test=en[:64], y_test=it[:64],
                                               verbose=0)
    # Bucketed batches hold one width per side, so their mean width is the examples'.
    widths = {True: round_width(trn.lengths).sum(axis=1).mean(),
              False: float(preproc.source_maxlen + preproc.target_maxlen)}

    class StepClock(keras.callbacks.Callback):
        """Each training step's wall time, in `seconds`."""

        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    n = args.steps
    medians, means = {True: [], False: []}, {True: [], False: []}
    for bucketing in (True, False, True, False):
        keras.utils.set_random_seed(0)
        model = seq2seq.translation_model("transformer", trn, preproc=preproc, verbose=0)
        learner = ktlite.get_learner(model, train_data=trn, batch_size=64, bucketing=bucketing)
        clock = StepClock()
        learner.fit_onecycle(1e-3, 1, steps_per_epoch=n, verbose=0, callbacks=[clock])
        medians[bucketing].append(np.median(clock.seconds))
        means[bucketing].append(np.mean(clock.seconds))
    print(f"{len(trn):,} training pairs, batch 64, source/target maxlen "
          f"{preproc.source_maxlen}/{preproc.target_maxlen}, {n} steps per try, two tries")
    best = {mode: min(times) for mode, times in medians.items()}
    for bucketing, label in ((True, "bucketing on (default)"), (False, "bucketing off")):
        print(f"{label:24s} median {best[bucketing] * 1000:6.1f} ms/step (mean with tracing "
              f"{min(means[bucketing]) * 1000:6.1f}), mean source + target width "
              f"{widths[bucketing]:.1f}")
    print(f"speed-up (medians): {best[False] / best[True]:.2f}x")


# ----------------------------------------------------------------------------- quality
def train_ktlite(args, en, it, en_val, it_val) -> tuple:
    import ktlite
    from ktlite import seq2seq

    start = time.perf_counter()
    trn, val, preproc = seq2seq.pairs_from_array(en, it, x_test=en_val, y_test=it_val,
                                                 backbone=args.backbone)
    model = seq2seq.translation_model(
        "transformer", trn, preproc=preproc,
        backbone=None if args.backbone_tokens_only else args.backbone,
    )
    learner = ktlite.get_learner(model, train_data=trn, val_data=val, batch_size=64)
    t = time.perf_counter()
    found = learner.lr_find(verbose=0, num_steps=50 if args.quick else None)
    suggestion = found.suggestion
    per_step = (time.perf_counter() - t) / max(len(found.lrs), 1)
    steps_per_epoch = int(np.ceil(len(trn) / 64))
    left = args.minutes * 60 - (time.perf_counter() - start)
    total_steps = max(20, int(left / (per_step * 1.15)))
    epochs = max(1, total_steps // steps_per_epoch)
    per_epoch = min(steps_per_epoch, total_steps // epochs)
    print(f"ktlite: lr {suggestion:.2e}, {epochs} epoch(s) of {per_epoch} steps "
          f"(~{per_step * 1000:.0f} ms/step)")
    learner.fit_onecycle(suggestion, epochs, steps_per_epoch=per_epoch, verbose=2)
    return learner, preproc, time.perf_counter() - start


def _strip_punctuation(text):
    import tensorflow as tf

    keep = re.escape(string.punctuation.replace("[", "").replace("]", ""))
    return tf.strings.regex_replace(tf.strings.lower(text), f"[{keep}]", "")


def keras_example_baseline(args, en, it, seconds: float, test_en: list[str]) -> list[str]:
    """A plain Keras encoder-decoder in the style of Keras' English-to-Spanish example."""
    import keras
    import tensorflow as tf
    from keras import layers, ops

    vocab, length, dim, latent, heads = 15000, 20, 256, 2048, 8
    src_vec = layers.TextVectorization(vocab, output_sequence_length=length)
    tgt_vec = layers.TextVectorization(vocab, output_sequence_length=length + 1,
                                       standardize=_strip_punctuation)
    src_vec.adapt(en)
    tgt_vec.adapt(["[start] " + t + " [end]" for t in it])

    class PositionalEmbedding(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.tokens = layers.Embedding(vocab, dim)
            self.positions = layers.Embedding(length, dim)

        def call(self, x):
            return self.tokens(x) + self.positions(ops.arange(ops.shape(x)[-1]))

        def compute_mask(self, x, mask=None):
            return ops.not_equal(x, 0)

    class Encoder(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.attention = layers.MultiHeadAttention(heads, dim)
            self.dense = keras.Sequential([layers.Dense(latent, "relu"), layers.Dense(dim)])
            self.norm1, self.norm2 = layers.LayerNormalization(), layers.LayerNormalization()
            self.supports_masking = True

        def call(self, x, mask=None):
            padding = None if mask is None else ops.cast(mask[:, None, :], "int32")
            h = self.norm1(x + self.attention(x, x, attention_mask=padding))
            return self.norm2(h + self.dense(h))

    class Decoder(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.self_attention = layers.MultiHeadAttention(heads, dim)
            self.cross_attention = layers.MultiHeadAttention(heads, dim)
            self.dense = keras.Sequential([layers.Dense(latent, "relu"), layers.Dense(dim)])
            self.norms = [layers.LayerNormalization() for _ in range(3)]
            self.supports_masking = True

        def call(self, x, memory, mask=None):
            h = self.norms[0](x + self.self_attention(x, x, use_causal_mask=True))
            h = self.norms[1](h + self.cross_attention(h, memory))
            return self.norms[2](h + self.dense(h))

    src_in = keras.Input((None,), dtype="int64")
    tgt_in = keras.Input((None,), dtype="int64")
    memory = Encoder()(PositionalEmbedding()(src_in))
    y = Decoder()(PositionalEmbedding()(tgt_in), memory)
    out = layers.Dense(vocab, activation="softmax")(layers.Dropout(0.5)(y))
    model = keras.Model([src_in, tgt_in], out)
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])

    tgt = tgt_vec(["[start] " + t + " [end]" for t in it])
    ds = tf.data.Dataset.from_tensor_slices(((src_vec(en), tgt[:, :-1]), tgt[:, 1:]))
    ds = ds.shuffle(10000).batch(64).prefetch(2)

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() > deadline:
                self.model.stop_training = True

    deadline = time.perf_counter() + seconds
    model.fit(ds, epochs=1000, callbacks=[Stop()], verbose=0)
    words = tgt_vec.get_vocabulary()
    start_id, end_id = words.index("[start]"), words.index("[end]")

    # The example's greedy loop: the whole model again for every new token.
    out_texts = []
    for i in range(0, len(test_en), 64):
        src = src_vec(test_en[i : i + 64])
        ids = np.zeros((src.shape[0], length), "int64")
        ids[:, 0] = start_id
        for t in range(length - 1):
            probs = model([src, tf.constant(ids[:, : t + 1])], training=False)[:, -1]
            ids[:, t + 1] = np.argmax(probs, axis=-1)
        for row in ids[:, 1:]:
            tokens = []
            for token in row:
                if token == end_id:
                    break
                tokens.append(words[token])
            out_texts.append(" ".join(t for t in tokens if t))
    return out_texts


def quality(args: argparse.Namespace) -> None:
    from ktlite.seq2seq.report import corpus_scores

    if args.quick:
        args.train_size = args.train_size or 3000
        args.minutes = min(args.minutes, 1.5)
        args.test_size = args.test_size or 300
    en, it = read_pairs(args.data_dir, "train", args.train_size)
    en_val, it_val = read_pairs(args.data_dir, "val", 500 if args.quick else None)
    test_en, test_it = read_pairs(args.data_dir, "test", args.test_size)
    print(f"{len(en):,} training pairs, {len(test_en):,} test pairs, {args.minutes} min each")

    import ktlite

    learner, preproc, seconds = train_ktlite(args, en, it, en_val, it_val)
    predictor = ktlite.get_predictor(learner.model, preproc, batch_size=64)
    results = {"translation memory (README)": MEMORY_BASELINE}
    for width in (1, 4):
        t = time.perf_counter()
        hypotheses = predictor.predict(test_en, beam_width=width)
        results[f"ktlite, beam {width}"] = corpus_scores(hypotheses, test_it)
        print(f"  beam {width}: decoded in {time.perf_counter() - t:.1f} s")
    print("examples:", list(zip(test_en[:3], hypotheses[:3])))
    print_scores(results)  # before the baseline, so a failure there loses nothing
    if not args.skip_keras:
        baseline = keras_example_baseline(args, en, it, seconds, test_en)
        results["Keras example style, greedy"] = corpus_scores(baseline, test_it)
        print_scores(results)


def print_scores(results: dict) -> None:
    print(f"{'system':32s} {'BLEU':>6s} {'chrF':>6s}")
    for name, scores in results.items():
        print(f"{name:32s} {scores['bleu']:6.1f} {scores['chrf']:6.1f}")


def _old_detokenize(preproc, ids) -> list[str]:
    """Target ids written back with the rules before commit 9c33033 (the baseline)."""
    import tensorflow as tf

    from ktlite.seq2seq import preprocessor as pp

    table = tf.constant(preproc.target_vocab, tf.string)
    ids = tf.cast(ids, tf.int32)
    before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, pp.END_ID), tf.int32), axis=1), 0)
    keep = before_end & (ids >= len(pp.SPECIAL_TOKENS)) & (ids < len(preproc.target_vocab))
    text = tf.strings.reduce_join(
        tf.ragged.boolean_mask(tf.gather(table, tf.maximum(ids, 0)), keep), axis=1,
        separator=" ")
    for pattern, replacement in ((f"(^| ){pp.CONTINUATION_PREFIX}", ""),
                                 (r" ([.,!?;:%)\]}+])", r"\1"), (r"([(\[{]) ", r"\1"),
                                 (r" ?([-'/_@]) ?", r"\1")):
        text = tf.strings.regex_replace(text, pattern, replacement)
    for _ in range(2):
        text = tf.strings.regex_replace(text, f"{pp._UNSPACED} {pp._UNSPACED}", r"\1\2")
    return [t.decode("utf-8") for t in text.numpy()]


def detok(args) -> None:
    import sacrebleu

    from ktlite.seq2seq.preprocessor import SPACED_DASH, PairPreprocessor

    sources, targets = read_pairs(args.data_dir, "train", args.train_size)
    _, references = read_pairs(args.data_dir, "test", args.test_size)
    today = PairPreprocessor().fit(sources, targets)
    # The baseline's vocabulary never saw the mark: dashes are tokenized as before.
    before = PairPreprocessor.from_config(
        {**today.get_config(), "joint_vocab": False}, today.source_vocab,
        [t for t in today.target_vocab if SPACED_DASH not in t])
    rows = {"rules before 9c33033": _old_detokenize(before, before.target_ids(references)),
            "today's rules": today.undo(today.target_ids(references))}
    print(f"{len(references):,} test targets written back and scored against themselves")
    for name, written in rows.items():
        bleu = sacrebleu.corpus_bleu(written, [references]).score
        chrf = sacrebleu.corpus_chrf(written, [references]).score
        exact = np.mean([w == r for w, r in zip(written, references)])
        print(f"  {name:22s} BLEU {bleu:6.2f}  chrF {chrf:6.2f}  written back exactly {exact:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("quality", "speed", "steps", "detok"))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="small slice, about 5 minutes")
    parser.add_argument("--skip-keras", action="store_true", help="no Keras-example baseline")
    parser.add_argument("--backbone", default=None,
                        help="a text backbone folder (ktlite.text.pretrain on English text) "
                             "to start the encoder from (quality part)")
    parser.add_argument("--backbone-tokens-only", action="store_true",
                        help="the control: the backbone's source tokenization, a fresh encoder")
    parser.add_argument("--steps", type=int, default=100, help="timed steps (steps part)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    {"quality": quality, "speed": speed, "steps": steps, "detok": detok}[args.part](args)


if __name__ == "__main__":
    main()
