"""Time one explanation (`ktlite.text.explain.explain`, occlusion) for the default model.

Uses the same default text model as benchmarks/serve.py (``text.text_classifier(
"transformer", ...)`` with defaults, trained briefly on WordNet lexnames from `--data`),
or a saved predictor given with ``--predictor``. Explains WordNet test glosses one at a time
and reports the median and p90 wall time of one explanation, the words per text, and the
time of one plain prediction for scale. Target: under 200 ms on 2 cores (ktrain's LIME takes
seconds per text).

Run from the repository root:
    .venv/bin/python benchmarks/explain.py --predictor /tmp/p   # reuse (or create) /tmp/p

Data: WordNet lexnames (`wordnet_lexnames_{train,val,test}.csv.gz`) read from the folder
`--data` (default ../shared/data, beside the repository). To rebuild it from a clone of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import DATA, default_predictor, machine, read_wordnet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--predictor", default=None, help="saved predictor folder (reused or created)"
    )
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--data", default=DATA,
                        help="folder of wordnet_lexnames_*.csv.gz (default ../shared/data)")
    parser.add_argument("--texts", type=int, default=50, help="texts explained (timed one by one)")
    args = parser.parse_args()

    import ktlite
    from ktlite.text.explain import explain

    predictor = ktlite.load_predictor(
        default_predictor(args.predictor, n_train=args.n_train, data=args.data))
    texts, _ = read_wordnet("test", args.texts, data=args.data)
    explain(predictor, texts[0])  # trace the forward pass once
    predictor.predict([texts[0]])

    explain_s, predict_s, words = [], [], []
    for sentence in texts:
        start = time.perf_counter()
        result = explain(predictor, sentence, top_k=10)
        explain_s.append(time.perf_counter() - start)
        words.append(len(result.words))
        start = time.perf_counter()
        predictor.predict([sentence])
        predict_s.append(time.perf_counter() - start)

    ms = np.array(explain_s) * 1000
    print(
        f"one explanation (occlusion, {len(texts)} WordNet test texts, "
        f"{np.median(words):.0f} words median / {max(words)} max, maxlen "
        f"{predictor.preproc.maxlen}): median {np.median(ms):.1f} ms, p90 "
        f"{np.percentile(ms, 90):.1f} ms, max {ms.max():.1f} ms; one predict: median "
        f"{np.median(predict_s) * 1000:.1f} ms; {machine()}"
    )
    example = explain(predictor, texts[1], top_k=5)
    print(f"example: {texts[1]!r} -> {example.label} ({example.probability:.3f}); top words: "
          + ", ".join(f"{w.word} {w.score:+.3f}" for w in example.top))


if __name__ == "__main__":
    main()
