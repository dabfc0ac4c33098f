"""Compression of the default text Transformer on WordNet lexnames (issue 6).

Trains the default `text_classifier("transformer")` (the teacher) on a subset of the
training split, then measures, for the original, Keras int8 (and int4), magnitude-pruned
50% and 80% (fine-tuned with `ktlite.compress.prune`), a distilled student with at most a
quarter of the parameters (plus the same student trained on labels alone), and TFLite
exports (float32, dynamic, int8):

- size on disk: the model as `.keras` without optimizer state (an uncompiled copy; Keras'
  `save_weights` would include the optimizer) or `model.tflite`; the same file gzipped
  (unstructured zeros only shrink a compressed file); and the predictor folder as
  `predictor.save` writes it (model without optimizer state, vocabulary, JSON files),
- median single-text latency (`predict_proba([text])`, 200 calls after warm-up),
- batch throughput (texts/s, 4,096 test texts, batch 128),
- test accuracy on all 11,908 test texts.

Targets: int8 loses <= 1 point and is >= 2x smaller; 50% pruning loses <= 1 point; the
student keeps >= 97% of the teacher's accuracy.

Usage: python benchmarks/compress.py [--train 20000] [--epochs 3] [--data ../shared/data]
       python benchmarks/compress.py --mask-overhead   # step cost of the in-graph masks
       python benchmarks/compress.py --folder-sizes    # predictor folder sizes only (~1 min)

`--folder-sizes` saves the untrained original, its Keras int8/int4 copies and the student
(each with a built optimizer, as after training) and prints their predictor folder sizes:
sizes do not depend on the weights' values, and a pruned model saves like the original.

Data: WordNet lexnames (`wordnet_lexnames_{train,val,test}.csv.gz`) read from `--data`
(default ../shared/data). To rebuild it from a clone of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from make_wordnet_lexnames import read_split, split_path  # noqa: E402


def subset(
    x: list[str], y: list[str], n: int, seed: int, floor: int = 10
) -> tuple[list[str], list[str]]:
    """A random subset of about `n` texts, stratified, with at least `floor` per class."""
    if n >= len(x):
        return x, y
    rng = np.random.default_rng(seed)
    labels = np.asarray(y)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = min(len(members), max(floor, round(n * len(members) / len(labels))))
        chosen.extend(rng.choice(members, size=take, replace=False))
    index = rng.permutation(np.asarray(chosen))
    return [x[i] for i in index], [y[i] for i in index]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def gzip_bytes(file: Path) -> int:
    return len(gzip.compress(file.read_bytes(), compresslevel=6))


def timing(predict, x_test: list[str]) -> dict[str, float]:
    singles = x_test[:200]
    for text in singles[:10]:
        predict([text])
    latencies = []
    for text in singles:
        start = time.perf_counter()
        predict([text])
        latencies.append(time.perf_counter() - start)
    batch = x_test[:4096]
    predict(batch[:256])
    start = time.perf_counter()
    predict(batch)
    return {
        "latency_ms": 1000 * float(np.median(latencies)),
        "throughput": len(batch) / (time.perf_counter() - start),
    }


def accuracy(probs: np.ndarray, class_names: list[str], y_test: list[str]) -> float:
    predicted = np.asarray(class_names)[probs.argmax(axis=1)]
    return float(np.mean(predicted == np.asarray(y_test)))


def inference_copy(model):
    """The model rebuilt without its compile state, so `.keras` holds no optimizer moments."""
    import keras

    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def measure_predictor(name, predictor, x_test, y_test, work: Path, params: int) -> dict:
    from ktlite.compress import sparsity

    folder = work / name.replace(" ", "_").replace("%", "pct").replace(",", "")
    predictor.save(folder)
    weights = work / f"{folder.name}.keras"
    model = predictor.model
    (inference_copy(model) if model.compiled else model).save(weights)
    predictor.batch_size = 128
    probs = predictor.predict_proba(x_test)
    row = {
        "variant": name,
        "params": params,
        "model_bytes": weights.stat().st_size,
        "model_gzip_bytes": gzip_bytes(weights),
        "folder_bytes": folder_bytes(folder),
        "accuracy": accuracy(probs, predictor.get_classes(), y_test),
        "sparsity": sparsity(predictor.model).overall,
    }
    row.update(timing(predictor.predict_proba, x_test))
    return row


def measure_tflite(name, predictor, x_test, y_test, work: Path, quantize, trn) -> dict:
    from ktlite.compress import export_tflite, load_tflite

    folder = work / name.replace(" ", "_")
    start = time.perf_counter()
    info = export_tflite(
        predictor,
        folder,
        quantize=quantize,
        representative_data=trn if quantize == "int8" else None,
    )
    export_s = time.perf_counter() - start
    runner = load_tflite(folder, num_threads=2, batch_size=128)
    probs = runner.predict_proba(x_test)
    row = {
        "variant": name,
        "params": predictor.model.count_params(),
        "model_bytes": info.size_bytes,
        "model_gzip_bytes": gzip_bytes(Path(info.model_file)),
        "folder_bytes": folder_bytes(folder),
        "accuracy": accuracy(probs, runner.class_names, y_test),
        "sparsity": 0.0,
        "tokenizer_inside": info.tokenizer_inside,
        "export_s": export_s,
    }
    row.update(timing(runner.predict_proba, x_test))
    return row


def fresh_copy(teacher, trn, preproc, lr: float):
    """A compiled default classifier holding the teacher's weights (for pruning)."""
    from ktlite import text

    model = text.text_classifier("transformer", trn, preproc=preproc, learning_rate=lr, verbose=0)
    model.set_weights(teacher.get_weights())
    return model


def folder_sizes(args) -> None:
    """Prints the predictor folder size of each architecture in the table (no training)."""
    import keras

    import ktlite
    from ktlite import compress, text

    keras.utils.set_random_seed(args.seed)
    x_train, y_train = subset(*read_split(split_path(args.data, "train")), args.train, args.seed)
    x_val, y_val = subset(*read_split(split_path(args.data, "val")), args.val, args.seed)
    trn, val, preproc = text.texts_from_array(x_train, y_train, x_val, y_val, verbose=0)
    teacher = text.text_classifier("transformer", trn, preproc=preproc, verbose=0)
    student = text.text_classifier("transformer", trn, preproc=preproc, embed_dim=32,
                                   num_heads=2, num_layers=1, ff_dim=128, verbose=0)
    work = Path(tempfile.mkdtemp(prefix="ktlite_sizes_"))
    predictors = {}
    for name, model in (("original", teacher), ("distilled student", student)):
        ktlite.get_learner(model, trn, val, verbose=0)  # builds the optimizer's variables
        predictors[name] = ktlite.get_predictor(model, preproc)
    for mode in ("int8", "int4"):
        predictors[f"Keras {mode}"] = compress.quantize_predictor(predictors["original"], mode)
    print("| variant | params | predictor folder |")
    print("| --- | --- | --- |")
    for i, (name, predictor) in enumerate(predictors.items()):
        folder = work / f"p{i}"
        predictor.save(folder)
        params = predictor.model.count_params()
        print(f"| {name} | {params:,} | {folder_bytes(folder) / 1e6:.2f} MB |")
    shutil.rmtree(work, ignore_errors=True)


def mask_overhead(steps: int = 100, rounds: int = 3) -> None:
    """CPU time per train step of the default-size Transformer with and without the masks.

    Random token ids (the cost does not depend on the data); `MagnitudePruning` with the
    constant schedule, so after its single mask update at step 0 each step only pays for
    the in-graph `kernel * mask` constraints. The first epoch (tracing) is not timed.
    """
    import keras

    from ktlite.compress import MagnitudePruning
    from ktlite.models import Transformer

    rng = np.random.default_rng(0)
    x = rng.integers(1, 16000, size=(32 * steps, 64)).astype("int32")
    y = rng.integers(0, 45, size=len(x))

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.last = time.process_time() - self.start

    results: dict[str, list[float]] = {"plain": [], "masked": []}
    for _ in range(rounds):
        for kind in ("plain", "masked"):
            keras.utils.set_random_seed(0)
            model = Transformer(16000, 64, embed_dim=128, num_heads=4, num_layers=2, num_outputs=45)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            clock = EpochClock()
            callbacks = [clock]
            if kind == "masked":
                callbacks.append(MagnitudePruning(0.5, schedule="constant"))
            model.fit(x, y, batch_size=32, epochs=2, callbacks=callbacks, verbose=0)
            results[kind].append(1000 * clock.last / steps)
    plain, masked = np.median(results["plain"]), np.median(results["masked"])
    print(
        f"CPU ms/step (median of {rounds}): plain {plain:.1f}, with pruning masks {masked:.1f} "
        f"({100 * (masked / plain - 1):+.1f}%); runs: {json.dumps(results)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--train", type=int, default=20000, help="training texts (random subset)")
    parser.add_argument("--val", type=int, default=4000, help="validation texts (random subset)")
    parser.add_argument("--test", type=int, default=None,
                        help="test texts, a stratified sample (default: all 11,908)")
    parser.add_argument("--epochs", type=int, default=3, help="teacher epochs")
    parser.add_argument("--lr", type=float, default=1e-3, help="teacher peak learning rate")
    parser.add_argument("--prune-epochs", type=int, default=2)
    parser.add_argument("--prune-lr", type=float, default=2e-4)
    parser.add_argument("--student-epochs", type=int, default=4)
    parser.add_argument("--student-lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--mask-overhead", action="store_true", help="only measure the pruning masks' step cost"
    )
    parser.add_argument(
        "--folder-sizes", action="store_true", help="only measure predictor folder sizes"
    )
    args = parser.parse_args()
    if args.mask_overhead:
        mask_overhead()
        return
    if args.folder_sizes:
        folder_sizes(args)
        return

    import keras
    import tensorflow as tf

    import ktlite
    from ktlite import compress, text

    keras.utils.set_random_seed(args.seed)
    x_train, y_train = subset(*read_split(split_path(args.data, "train")), args.train, args.seed)
    x_val, y_val = subset(*read_split(split_path(args.data, "val")), args.val, args.seed)
    x_test, y_test = read_split(split_path(args.data, "test"))
    if args.test:  # a stratified sample: the file is ordered by class
        x_test, y_test = subset(x_test, y_test, args.test, args.seed, floor=1)
    work = Path(tempfile.mkdtemp(prefix="ktlite_compress_"))
    atexit.register(shutil.rmtree, work, True)  # a failed step leaves no folder behind
    rows: list[dict] = []
    clock = {}
    t0 = time.perf_counter()

    trn, val, preproc = text.texts_from_array(x_train, y_train, x_val, y_val, verbose=0)
    teacher = text.text_classifier(
        "transformer", trn, preproc=preproc, learning_rate=args.lr, verbose=0
    )
    learner = ktlite.get_learner(teacher, trn, val, batch_size=32, seed=args.seed, verbose=0)
    start = time.perf_counter()
    learner.fit_onecycle(args.lr, args.epochs, verbose=2)
    clock["teacher_train_s"] = time.perf_counter() - start
    predictor = ktlite.get_predictor(teacher, preproc)
    rows.append(
        measure_predictor("original", predictor, x_test, y_test, work, teacher.count_params())
    )

    for mode in ("int8", "int4"):
        small = compress.quantize_predictor(predictor, mode)
        rows.append(
            measure_predictor(f"Keras {mode}", small, x_test, y_test, work, teacher.count_params())
        )

    for target in (0.5, 0.8):
        model = fresh_copy(teacher, trn, preproc, args.prune_lr)
        pruner = ktlite.get_learner(model, trn, val, batch_size=32, seed=args.seed, verbose=0)
        start = time.perf_counter()
        compress.prune(
            pruner, target_sparsity=target, epochs=args.prune_epochs, lr=args.prune_lr, verbose=2
        )
        clock[f"prune_{int(target * 100)}_s"] = time.perf_counter() - start
        rows.append(
            measure_predictor(
                f"pruned {int(target * 100)}%",
                ktlite.get_predictor(model, preproc),
                x_test,
                y_test,
                work,
                model.count_params(),
            )
        )

    student_kwargs = dict(
        embed_dim=32,
        num_heads=2,
        num_layers=1,
        ff_dim=128,
        learning_rate=args.student_lr,
        verbose=0,
    )
    student = text.text_classifier("transformer", trn, preproc=preproc, **student_kwargs)
    ratio = student.count_params() / teacher.count_params()
    assert ratio <= 0.25, f"student has {ratio:.2%} of the teacher's parameters"
    start = time.perf_counter()
    distiller = compress.distill(
        teacher,
        student,
        trn,
        val,
        temperature=2.0,
        alpha=0.5,
        batch_size=32,
        seed=args.seed,
        verbose=0,
    )
    clock["distill_precompute_s"] = time.perf_counter() - start
    distiller.fit_onecycle(args.student_lr, args.student_epochs, verbose=2)
    clock["distill_s"] = time.perf_counter() - start
    rows.append(
        measure_predictor(
            "distilled student",
            ktlite.get_predictor(student, preproc),
            x_test,
            y_test,
            work,
            student.count_params(),
        )
    )

    keras.utils.set_random_seed(args.seed)
    plain = text.text_classifier("transformer", trn, preproc=preproc, **student_kwargs)
    start = time.perf_counter()
    ktlite.get_learner(plain, trn, val, batch_size=32, seed=args.seed, verbose=0).fit_onecycle(
        args.student_lr, args.student_epochs, verbose=2
    )
    clock["student_labels_only_s"] = time.perf_counter() - start
    rows.append(
        measure_predictor(
            "student, labels only",
            ktlite.get_predictor(plain, preproc),
            x_test,
            y_test,
            work,
            plain.count_params(),
        )
    )

    for quantize in (None, "dynamic", "int8"):
        rows.append(
            measure_tflite(
                f"TFLite {quantize or 'float32'}", predictor, x_test, y_test, work, quantize, trn
            )
        )
    clock["total_s"] = time.perf_counter() - t0

    base = rows[0]
    print(
        f"\nteacher: {teacher.count_params():,} params, maxlen {preproc.maxlen}, "
        f"vocab {preproc.vocab_size}, "
        f"{len(x_train):,} train / {len(x_val):,} val / {len(x_test):,} test texts; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}, "
        f"Keras {keras.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "| variant | params | .keras (no optimizer) / .tflite | gzipped | predictor folder | "
        "sparsity | "
        "median 1-text latency | batch throughput | test accuracy | vs original |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['variant']} | {row['params']:,} | {row['model_bytes'] / 1e6:.2f} MB | "
            f"{row['model_gzip_bytes'] / 1e6:.2f} MB | {row['folder_bytes'] / 1e6:.2f} MB | "
            f"{row['sparsity']:.0%} | {row['latency_ms']:.2f} ms | "
            f"{row['throughput']:,.0f} texts/s | "
            f"{row['accuracy']:.4f} | {100 * (row['accuracy'] - base['accuracy']):+.2f} pt |"
        )
    print("timings (s):", json.dumps({k: round(v, 1) for k, v in clock.items()}))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "clock": clock}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
