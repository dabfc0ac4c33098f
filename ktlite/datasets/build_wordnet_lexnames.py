"""Rebuild the WordNet lexnames sample shipped in this folder.

The full data set (117,659 synsets, 45 classes) is built from Debian's ``wordnet-base``
package; this script keeps a deterministic sample of it so the package stays small:
every training row whose synset-id hash falls in the first ``--train-share`` of the hash
range, and likewise for the test rows. Usage::

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


def _keep(synset_id: str, share: float) -> bool:
    digest = int(hashlib.sha256(synset_id.encode("utf-8")).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < share


def _sample(source: Path, target: Path, share: float) -> int:
    kept = 0
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fin, gzip.open(
        target, "wt", encoding="utf-8", newline=""
    ) as fout:
        writer = csv.writer(fout)
        writer.writerow(["label", "text"])
        for row in csv.DictReader(fin):
            if _keep(row["id"], share):
                writer.writerow([row["label"], row["text"]])
                kept += 1
    return kept


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
