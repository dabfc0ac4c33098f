"""Builds the WordNet lexnames data the text benchmarks read (`--data`, default ../shared/data),
and reads it back for them (`split_path`, `read_split`).

Every WordNet 3.0 synset becomes one row: `id` (part of speech + synset offset), `label`
(its lexicographer file, 45 classes such as `noun.animal` or `verb.motion`) and `text` (the
synset's words and gloss, "dog, domestic dog, Canis familiaris: a member of the genus
..."). Rows are split by a hash of the id: 80% train, 10% val, 10% test (93,822 / 11,929 /
11,908). The files written are `wordnet_lexnames_{train,val,test}.csv.gz`.

The source is the WordNet database as Debian's `wordnet-base` package installs it
(`/usr/share/wordnet/data.{noun,verb,adj,adv}`); WordNet 3.0 is under the Princeton WordNet
licence, so keep its notice with any copy (see ktlite/datasets/LICENSE-WORDNET.txt).

Usage (from a clone of ktlite):

    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
from pathlib import Path

# Lexicographer file names in the order of their numbers in WordNet's data files.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
PARTS_OF_SPEECH = ("noun", "verb", "adj", "adv")


def read_synsets(wordnet: Path) -> list[tuple[str, str, str]]:
    """Returns `(id, label, text)` for every synset in the WordNet data files."""
    rows = []
    for pos in PARTS_OF_SPEECH:
        with open(wordnet / f"data.{pos}", encoding="latin-1") as fh:
            for line in fh:
                if line.startswith("  "):  # the licence header
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                n_words = int(fields[3], 16)
                words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
                text = ", ".join(words) + ": " + gloss.strip()
                rows.append((pos + fields[0], LEXNAMES[int(fields[1])], text))
    return rows


def split_of(synset_id: str) -> str:
    """`test` / `val` / `train` from the id's SHA-256 (10% / 10% / 80%)."""
    bucket = int(hashlib.sha256(synset_id.encode()).hexdigest(), 16) % 10
    return {0: "test", 1: "val"}.get(bucket, "train")


def split_path(folder: str | Path, split: str) -> Path:
    """`folder/wordnet_lexnames_{split}.csv.gz` for split `"train"`, `"val"` or `"test"`."""
    return Path(folder) / f"wordnet_lexnames_{split}.csv.gz"


def read_split(path: str | Path) -> tuple[list[str], list[str]]:
    """The `(texts, labels)` of one file written by this script, in file order."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [row["text"] for row in rows], [row["label"] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"),
                        help="folder holding WordNet's data.noun, data.verb, ...")
    args = parser.parse_args()
    rows = read_synsets(args.wordnet)
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        path = args.out / f"wordnet_lexnames_{split}.csv.gz"
        with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "label", "text"])
            kept = [row for row in rows if split_of(row[0]) == split]
            writer.writerows(kept)
        print(f"{path}: {len(kept):,} rows")


if __name__ == "__main__":
    main()
