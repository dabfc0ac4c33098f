"""Benchmark: learning a 16k WordPiece vocabulary from the WordNet lexnames training texts.

ktlite's learner (tensorflow-text normalization + the ``tokenizers`` WordPiece trainer) runs
on all 93,822 training texts; tensorflow-text's own pure-Python learner
(``bert_vocab_from_dataset``) runs on subsets and its time is extrapolated to the full set
(in proportion, and with an affine fit through the subset sizes; said so in the output).
Target: <= 5 s for ktlite on 2 cores.

Usage:
    python benchmarks/vocab.py [--subsets 2500 10000] [--repeats 3] [--data PATH]

Data: WordNet lexnames (`wordnet_lexnames_{train,val,test}.csv.gz`) read from
`--data` (default ../shared/data). To rebuild it from a clone of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from make_wordnet_lexnames import read_split, split_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"
)


def time_ktlite(texts: list[str], vocab_size: int, repeats: int) -> tuple[list[float], dict]:
    from ktlite.text.normalization import normalize_texts
    from ktlite.text.vocabulary import learn_wordpiece_vocab

    normalize_texts(texts[:100])  # warm up TensorFlow so its start-up is not timed
    times, cpu, loads, vocab = [], [], [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        vocab = learn_wordpiece_vocab(texts, vocab_size=vocab_size)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        loads.append(os.getloadavg()[0])
    start = time.perf_counter()
    normalize_texts(texts)
    normalize_s = time.perf_counter() - start
    info = {"vocab_len": len(vocab), "normalize_s": normalize_s, "cpu": cpu, "loads": loads}
    return times, info


def time_tf_text(texts: list[str], vocab_size: int) -> tuple[float, int]:
    import tensorflow as tf
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as bert_vocab

    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(1000).prefetch(2)
    start = time.perf_counter()
    vocab = bert_vocab.bert_vocab_from_dataset(
        dataset,
        vocab_size=vocab_size,
        reserved_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        bert_tokenizer_params={"lower_case": True},
        learn_params={},
    )
    return time.perf_counter() - start, len(vocab)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="folder of wordnet_lexnames_train.csv.gz (default ../shared/data)")
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument(
        "--subsets",
        type=int,
        nargs="+",
        default=[2500, 10000],
        help="subset sizes for tensorflow-text's learner (two or more: an affine fit)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    texts, _ = read_split(split_path(args.data, "train"))
    times, info = time_ktlite(texts, args.vocab_size, args.repeats)
    median = statistics.median(times)
    sizes = sorted(args.subsets)
    tf_runs = [(k, *time_tf_text(texts[:k], args.vocab_size)) for k in sizes]
    largest, tf_s, tf_len = tf_runs[-1]
    linear = tf_s * len(texts) / largest
    affine = linear
    if len(tf_runs) > 1:
        slope, intercept = np.polyfit([r[0] for r in tf_runs], [r[1] for r in tf_runs], 1)
        affine = intercept + slope * len(texts)
    tf_full = min(linear, affine)

    import tensorflow as tf
    import tokenizers

    lines = [
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"visible, Python {platform.python_version()}, tensorflow {tf.__version__}, "
        f"tokenizers {tokenizers.__version__}",
        f"ktlite learn_wordpiece_vocab, {len(texts):,} texts, vocab_size={args.vocab_size}: "
        f"median {median:.2f} s, min {min(times):.2f} s over {args.repeats} runs "
        f"(of which TF normalization {info['normalize_s']:.2f} s); CPU time (all threads) "
        f"median {statistics.median(info['cpu']):.2f} s; 1-min load average during the runs "
        f"{', '.join(f'{x:.1f}' for x in info['loads'])}; {info['vocab_len']} tokens",
        "tensorflow-text bert_vocab_from_dataset (pure Python), not run on all texts: "
        + "; ".join(f"{k:,} texts {t:.1f} s ({v} tokens)" for k, t, v in tf_runs),
        f"  extrapolated to {len(texts):,} texts: {linear:.0f} s in proportion to the "
        f"{largest:,}-text run, {affine:.0f} s with an affine fit (time = a + b * texts) "
        f"through the runs; the smaller ({tf_full:.0f} s) is used below",
        f"ratio (tensorflow-text extrapolated / ktlite median): {tf_full / median:.0f}x; "
        f"target <= 5 s wall on 2 cores: {'met' if median <= 5 else 'NOT met'} "
        f"(CPU time {statistics.median(info['cpu']):.2f} s bounds the wall time on 2 idle cores)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
