"""Rebuild the WordNet lexnames sample shipped in this folder.

The full data set (117,659 synsets, 45 classes) is built from Debian's ``wordnet-base``
package; this script keeps a deterministic sample of it so the package stays small:
every training row whose synset-id hash falls in the first ``--train-share`` of the hash
range, and likewise for the test rows, ordered by that hash so any prefix is a fair sample. Usage::

    python -m ktlite.datasets.build_wordnet_lexnames \\
        --train path/to/wordnet_lexnames_train.csv.gz \\
        --test path/to/wordnet_lexnames_test.csv.gz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _position(synset_id: str) -> float:
    """A stable pseudo-random number in [0, 1] for a synset id."""
    return int(hashlib.sha256(synset_id.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def _sample(source: Path, target: Path, share: float) -> int:
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fin:
        rows = [row for row in csv.DictReader(fin) if _position(row["id"]) < share]
    # The source is grouped by part of speech; ordering by the hash shuffles it, so that
    # the first N rows are a fair sample of every class.
    rows.sort(key=lambda row: _position(row["id"]))
    with gzip.open(target, "wt", encoding="utf-8", newline="") as fout:
        writer = csv.writer(fout)
        writer.writerow(["label", "text"])
        writer.writerows([row["label"], row["text"]] for row in rows)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--train-share", type=float, default=0.3)
    parser.add_argument("--test-share", type=float, default=0.3)
    args = parser.parse_args()
    n_train = _sample(args.train, HERE / "wordnet_lexnames_train.csv.gz", args.train_share)
    n_test = _sample(args.test, HERE / "wordnet_lexnames_test.csv.gz", args.test_share)
    sys.stdout.write(f"kept {n_train} training and {n_test} test rows\n")


if __name__ == "__main__":
    main()
