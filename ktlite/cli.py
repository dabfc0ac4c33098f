"""The ``ktlite`` command line: ``ktlite demo`` and ``ktlite serve``.

Example:
    $ ktlite demo                      # train, validate, save and reload a text classifier
    $ ktlite serve my_predictor --port 8000
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ktlite
from ktlite._console import say

_DEMO_TEXTS = [
    "sparrow, house sparrow: small brown bird common in towns",
    "sprint, dash: run very fast for a short distance",
    "granite: hard igneous rock used in building",
]


def run_demo(args: argparse.Namespace) -> int:
    """Runs the three-line workflow end to end on the shipped WordNet sample.

    Args:
        args: parsed ``ktlite demo`` arguments.

    Returns:
        The process exit status (0 on success).
    """
    from ktlite import text
    from ktlite.datasets import load_wordnet_lexnames
    from ktlite.predictor import is_predictor_folder

    output = Path(args.output)
    if output.exists() and not (output.is_dir() and not output.is_symlink() and (
            not any(output.iterdir()) or is_predictor_folder(output))):
        raise ValueError(  # checked now, not after minutes of training
            f"--output {args.output!r} is a file or a folder ktlite did not write; "
            "choose a new or empty folder."
        )
    start = time.perf_counter()
    x_train, y_train = load_wordnet_lexnames("train")
    x_test, y_test = load_wordnet_lexnames("test")
    if args.max_train is not None:
        x_train, y_train = x_train[: args.max_train], y_train[: args.max_train]
        # A small slice may miss the rarest classes; score only the classes it has.
        known = set(y_train)
        x_test, y_test = map(list, zip(*[(x, y) for x, y in zip(x_test, y_test) if y in known]))
    if args.max_test is not None and args.max_test < len(x_test):
        # Every k-th text, so the slice spans the whole file.
        step = len(x_test) / args.max_test
        keep = [int(i * step) for i in range(args.max_test)]
        x_test, y_test = [x_test[i] for i in keep], [y_test[i] for i in keep]
    say(
        f"ktlite {ktlite.__version__} demo: WordNet lexnames, {len(x_train)} training and "
        f"{len(x_test)} test texts, {len(set(y_train))} classes"
    )
    trn, val, preproc = text.texts_from_array(x_train, y_train, x_test, y_test, verbose=1)
    model = text.text_classifier("transformer", trn, preproc=preproc)
    learner = ktlite.get_learner(model, train_data=trn, val_data=val, batch_size=args.batch_size)

    if args.lr is None:
        say("\n1/4 lr_find: sweeping the learning rate")
        result = learner.lr_find(verbose=1)
        suggestions = ", ".join(f"{k}={v:.2e}" for k, v in result.suggestions.items())
        lr = result.suggestion
        if not math.isfinite(lr):
            raise ValueError(
                "The LR finder could not suggest a learning rate (the sweep was too short); "
                "pass one with --lr."
            )
        say(f"suggestions: {suggestions}; training with lr={lr:.2e}")
    else:
        lr = args.lr
        say(f"\n1/4 lr_find: skipped; training with --lr {lr:.2e}")

    say(f"\n2/4 fit_onecycle: {args.epochs} epochs")
    learner.fit_onecycle(lr, args.epochs)

    say("\n3/4 validate")
    learner.validate()

    say(f"\n4/4 save the predictor to {args.output!r}, reload it, predict")
    predictor = ktlite.get_predictor(learner.model, preproc)
    predictor.save(args.output)
    reloaded = ktlite.load_predictor(args.output)
    for sentence, label in zip(_DEMO_TEXTS, reloaded.predict(_DEMO_TEXTS)):
        say(f"  {label:<22} <- {sentence}")
    say(f"\ndone in {time.perf_counter() - start:.0f} s")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serves a saved predictor over HTTP (needs ``pip install ktlite[serve]``).

    Args:
        args: parsed ``ktlite serve`` arguments.

    Returns:
        The process exit status (0 after a clean shutdown).
    """
    from ktlite import apps

    apps.serve(
        args.predictor_dir,
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_body_bytes=args.max_body_bytes,
        max_explain_words=args.max_explain_words,
        max_explain_chars=args.max_explain_chars,
    )
    return 0


def _option(convert: Callable[[str], Any], accepts: Callable[[Any], bool],
            expected: str) -> Callable[[str], Any]:
    """An argparse `type` that converts a value and refuses, saying what it expected."""

    def parse(value: str) -> Any:
        try:
            number = convert(value)
        except ValueError:
            number = None
        if number is None or not accepts(number):
            raise argparse.ArgumentTypeError(f"expected {expected}, received {value!r}")
        return number

    return parse


_positive_int = _option(int, lambda n: n > 0, "a positive int")
_positive_float = _option(float, lambda n: math.isfinite(n) and n > 0, "a positive number")
_milliseconds = _option(float, lambda n: math.isfinite(n) and n >= 0,
                        "a number of milliseconds >= 0")
_port = _option(int, lambda n: 1 <= n <= 65535, "a port in 1..65535")


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser of the ``ktlite`` command."""
    parser = argparse.ArgumentParser(
        prog="ktlite", description="Train and ship Keras Transformer models."
    )
    parser.add_argument("--version", action="version", version=f"ktlite {ktlite.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a Transformer on shipped WordNet data")
    demo.add_argument("--epochs", type=_positive_int, default=2,
                      help="epochs of fit_onecycle (default: %(default)s)")
    demo.add_argument("--batch-size", type=_positive_int, default=64,
                      help="training batch size (default: %(default)s)")
    demo.add_argument("--lr", type=_positive_float, default=None,
                      help="learning rate for fit_onecycle (default: the LR finder's suggestion)")
    demo.add_argument("--max-train", type=_positive_int, default=None,
                      help="use only the first N training texts")
    demo.add_argument("--max-test", type=_positive_int, default=None,
                      help="score on N test texts spread evenly over the test file")
    demo.add_argument("--output", default="ktlite_demo_predictor",
                      help="folder to save the predictor in (default: %(default)s)")
    demo.set_defaults(handler=run_demo)

    serve = commands.add_parser(
        "serve", help="serve a saved predictor over HTTP",
        description="Serves a saved predictor: POST /predict {\"inputs\": [...]}, GET /health, "
        "/metadata, /docs. Slow clients are cut off: request headers within 10 s, bodies "
        "within 10 s, idle keep-alive connections after 5 s, 503 past 256 open connections.",
    )
    serve.add_argument("predictor_dir", help="a folder saved by `predictor.save`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=_port, default=8000,
                       help="port to listen on (default: %(default)s)")
    serve.add_argument("--max-batch-size", type=_positive_int, default=32,
                       help="most inputs per model call (default: %(default)s)")
    serve.add_argument("--max-wait-ms", type=_milliseconds, default=5.0,
                       help="how long a request waits for others to batch with "
                            "(default: %(default)s)")
    serve.add_argument("--max-body-bytes", type=_positive_int, default=1024 * 1024,
                       help="largest request body in bytes; larger get 413. Images travel "
                            "in base64, 4/3 of their file: a 4 MB photo needs 5600000 "
                            "(default: %(default)s)")
    serve.add_argument("--max-explain-words", type=_positive_int, default=1000,
                       help="most words in an /explain text; more get 413 "
                            "(default: %(default)s)")
    serve.add_argument("--max-explain-chars", type=_positive_int, default=20_000,
                       help="most characters in an /explain text; more get 413 "
                            "(default: %(default)s)")
    serve.set_defaults(handler=run_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ktlite`` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (OSError, ValueError, TypeError, ImportError) as error:
        # A bad path or argument is the user's to fix: one line, not a traceback.
        parser.exit(2, f"ktlite {args.command}: error: {error}\n")


if __name__ == "__main__":
    raise SystemExit(main())
