"""Why did the predictor say that? Word attributions by occlusion.

Method: **occlusion (leave one word out)**. The text is split into words (runs of letters and
digits, single punctuation marks, single CJK characters, roughly the units the WordPiece
tokenizer starts from). For every word a copy of the text without that word is made, and the
original plus all copies go through ``predictor.predict_proba`` in one batched call. A word's
score is how much the explained class's probability drops when the word is removed (for
regression, how much the explained output's value drops); a negative score means the word
argued against it. The explained class is the predicted one (the most probable label for
multilabel) unless ``target`` picks another; a regression model with several outputs needs
``target`` to say which output to explain.

Why occlusion rather than integrated gradients over the embeddings:

- Speed. A text of ``n`` words costs one batched forward pass over ``n + 1`` short texts
  (tens of milliseconds for the default Transformer on 2 cores). Integrated gradients needs a
  forward *and* backward pass per interpolation step (typically 20-50 steps) and LIME, as in
  ktrain, samples thousands of perturbations (seconds per text).
- Faithfulness to what is served. The perturbed texts take exactly the path a request takes:
  the in-graph tensorflow-text tokenizer, padding mask, model and head. Integrated gradients
  would need the model cut open at its embedding layer and a baseline choice (all-padding,
  which the padding mask then hides, or ``[UNK]``), and attributions on word pieces that have
  to be merged back into words.
- Generality. Only ``predict_proba`` is needed, so the same code explains the Transformer,
  the fastText and NBSVM baselines, and any future text model.

Limits: occlusion measures each word alone, so two words that each suffice for the prediction
share the credit poorly; removing a word also shifts the positions of the words after it.
Words past the model's ``maxlen`` tokens cannot change the prediction and are scored 0
without being run; so are words that make no token at all (zero-width spaces, soft hyphens,
byte-order marks, lone combining marks), which the tokenizer drops and which therefore take
no room in ``maxlen`` either.
"""

from __future__ import annotations

import bisect
import dataclasses
import html
import numbers
import re
import unicodedata
from typing import Any

import numpy as np

from ktlite.arguments import check_bool, check_int, check_positive_int
from ktlite.labels import class_position

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_WORD_RE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_DEFAULT_MAX_WORDS = 512


@dataclasses.dataclass(frozen=True)
class WordScore:
    """One word of the explained text and its attribution.

    Attributes:
        word: the word as it appears in the text.
        start: its start offset (in characters) in the text.
        end: its end offset (exclusive).
        score: drop in the explained class's probability (or the explained output's value)
            when the word is removed; positive supports it, negative argues against it.
    """

    word: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a plain dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Word attributions for one prediction, as plain data with an HTML view.

    Attributes:
        text: the explained text.
        label: the explained label: the class name (the predicted class unless `explain`'s
            ``target`` picked another), or the value for regression.
        class_index: column of the explained class (or regression output) in the predictor's
            output (None for a single-output model).
        probability: the explained class's probability (the value itself for regression).
        words: every word of the text in order, with its score.
        top_k: how many words `top` holds at most.
        method: ``"occlusion"``.
        targeted: True when `explain`'s ``target`` chose the class, which then need not be
            the predicted one (the HTML heads it "Explained" instead of "Predicted"); False
            for regression, whose explained output is a predicted value.

    Example:
        >>> exp = explain(predictor, "the cat sat on the mat", top_k=3)
        >>> exp.label, [w.word for w in exp.top]
        >>> exp  # in a notebook: the text with words highlighted by score
    """

    text: str
    label: Any
    class_index: int | None
    probability: float
    words: list[WordScore]
    top_k: int = 10
    method: str = "occlusion"
    targeted: bool = False

    @property
    def top(self) -> list[WordScore]:
        """The `top_k` most influential words, largest absolute score first."""
        ranked = sorted(self.words, key=lambda w: (-abs(w.score), w.start))
        return ranked[: self.top_k]

    def to_dict(self) -> dict[str, Any]:
        """Returns the explanation as JSON-ready plain data.

        Returns:
            A dict with ``text``, ``label``, ``class_index``, ``probability``, ``method``,
            ``targeted``, ``words`` (every word in text order) and ``top`` (the `top_k` most
            influential), each word a dict with ``word``, ``start``, ``end``, ``score``.
        """
        return {
            "text": self.text,
            "label": self.label,
            "class_index": self.class_index,
            "probability": self.probability,
            "method": self.method,
            "targeted": self.targeted,
            "words": [w.to_dict() for w in self.words],
            "top": [w.to_dict() for w in self.top],
        }

    def to_html(self) -> str:
        """Renders the text with each word shaded by its score, and the top words listed.

        Green shades support the prediction, red ones argue against it; hovering a word shows
        its score. Every piece of the text is HTML-escaped.

        Returns:
            An HTML fragment (a ``<div>``), safe to embed in a page.
        """
        scale = max((abs(w.score) for w in self.words), default=0.0) or 1.0
        pieces, cursor = [], 0
        for word in self.words:
            pieces.append(html.escape(self.text[cursor: word.start]))
            alpha = min(1.0, abs(word.score) / scale)
            rgb = "0,160,60" if word.score >= 0 else "220,40,40"
            pieces.append(
                f'<span title="{word.score:+.4f}" style="background-color:rgba({rgb},'
                f'{alpha:.2f})">{html.escape(word.word)}</span>'
            )
            cursor = word.end
        pieces.append(html.escape(self.text[cursor:]))
        top = "".join(
            f"<li><code>{html.escape(w.word)}</code> {w.score:+.4f}</li>" for w in self.top
        )
        return (
            '<div class="ktlite-explanation">'
            f"<p><b>{'Explained' if self.targeted else 'Predicted'}:</b> "
            f"{html.escape(str(self.label))} "
            f"({self.probability:.4f}) &middot; method: {html.escape(self.method)}</p>"
            f'<p style="line-height:1.8">{"".join(pieces)}</p>'
            f"<ol>{top}</ol></div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Splits `text` into the units that `explain` occludes.

    Args:
        text: any string.

    Returns:
        ``(word, start, end)`` triples in order: runs of letters/digits, single punctuation
        marks and single CJK characters; whitespace is dropped. Combining marks (Hindi
        vowel signs, Arabic and Hebrew vowel points, accents), zero-width joiners, variation
        selectors and skin-tone modifiers stay with the letter or emoji they belong to.

    Example:
        >>> split_words("Hi, 世界!")
        [('Hi', 0, 2), (',', 2, 3), ('世', 4, 5), ('界', 5, 6), ('!', 6, 7)]
    """
    units: list[tuple[str, int, int]] = []
    for match in _WORD_RE.finditer(text):
        word, start, end = match.group(), match.start(), match.end()
        if units and units[-1][2] == start and (
            _attaches(word[0]) or (_attaches(units[-1][0][-1]) and not _is_punctuation(word))
        ):
            previous = units.pop()
            word, start = previous[0] + word, previous[1]
        units.append((word, start, end))
    return units


def _attaches(char: str) -> bool:
    """A character that belongs to the one before it: a combining mark, a joiner, a
    variation selector or an emoji skin-tone modifier."""
    return (unicodedata.category(char).startswith("M") or char in "\u200d\ufe0e\ufe0f"
            or "\U0001f3fb" <= char <= "\U0001f3ff")


def _is_punctuation(word: str) -> bool:
    return unicodedata.category(word[0]).startswith("P")


def explain(
    predictor: Any,
    text: str,
    top_k: int = 10,
    as_html: bool = False,
    target: int | str | None = None,
) -> Explanation | str:
    """Scores each word of `text` by how much it drives the predictor's prediction.

    Uses occlusion (see the module docstring for why): the text and one copy per word with
    that word removed are predicted in one batched call, and a word's score is the drop in
    the explained class's probability (the explained output's value for regression) without
    it. By default the predicted class is explained (for a multilabel predictor, the most
    probable label); `target` picks another class, or the output of a regression model with
    several outputs.

    Args:
        predictor: a text predictor with ``predict_proba(list[str]) -> np.ndarray`` (e.g.
            `ktlite.text.predictor.TextPredictor`); ``get_classes()`` and ``preproc.maxlen``
            are used when present.
        text: the text to explain (non-empty, with at least one word).
        top_k: number of words in ``Explanation.top`` and in the HTML list. Default 10.
        as_html: return the HTML rendering (a str) instead of the `Explanation`. Default
            False; an `Explanation` also renders itself in notebooks.
        target: the output column to explain, in ``[0, number of outputs - 1]``: for a
            classifier the class index or the class name (``label`` and ``probability``
            then report that class, predicted or not), for regression the output. Default
            None: the predicted class, or the only output of a single-output regression
            model; a regression model with several outputs needs an int.

    Returns:
        An `Explanation` (plain data: ``.label``, ``.probability``, ``.words``, ``.top``,
        ``.to_dict()``), or its HTML as a str when `as_html` is True.

    Raises:
        TypeError: if `text` is not a str, `top_k` is not an int, `as_html` is not a bool,
            `target` is neither None, an int (a bool is not an int here) nor, for a
            classifier, a class name, or `predictor` has no ``predict_proba`` (no
            ``predict`` for a regression predictor).
        ValueError: if `text` has no words (or only words that make no tokens, such as
            zero-width spaces), `top_k` < 1, `target` is outside ``[0, number of outputs -
            1]`` or names no class, `target` is None for a regression model with several
            outputs, or the predictor returns the wrong number of rows.

    Example:
        >>> from ktlite.text.explain import explain
        >>> exp = explain(predictor, "sparrow: small brown bird", top_k=3)
        >>> [(w.word, round(w.score, 3)) for w in exp.top]
        >>> explain(regressor, "a sunny, quiet flat", target=1).label  # output 1's value
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str. Received: text={text!r}")
    top_k = check_positive_int(top_k, "top_k")
    as_html = check_bool(as_html, "as_html")
    regression = _label_mode(predictor) == "regression"
    method = "predict" if regression else "predict_proba"
    if not callable(getattr(predictor, method, None)):
        raise TypeError(
            f"`predictor` must have a `{method}(list[str])` method. "
            f"Received: predictor={predictor!r}"
        )
    if isinstance(target, str) and not regression:
        target = _class_index(predictor, target)
    # Refused before the model runs when the predictor says how many outputs it has.
    target = _check_target(target, _declared_outputs(predictor), regression)
    words = split_words(text)
    run = _words_seen(predictor, text, words) if words else []
    if not run:
        raise ValueError(
            "`text` must contain at least one word the predictor reads (zero-width and "
            f"other invisible characters make no tokens). Received: text={text!r:.200}"
        )

    variants = [text] + [_without(text, words[i][1], words[i][2]) for i in run]
    outputs = _outputs(predictor, variants)
    if outputs.shape[0] != len(variants):
        raise ValueError(
            f"`predictor.{method}` returned {outputs.shape[0]} rows for {len(variants)} "
            "texts; it must return one row per text."
        )
    outputs = outputs.reshape(len(variants), -1)
    target = _check_target(target, outputs.shape[1], regression)

    label, class_index, value = _predicted(predictor, outputs[0], target)
    column = outputs[:, 0] if class_index is None else outputs[:, class_index]
    drops = dict(zip(run, (column[0] - column[1:]).tolist()))
    scored = [
        WordScore(word, start, end, float(drops.get(i, 0.0)))
        for i, (word, start, end) in enumerate(words)
    ]
    explanation = Explanation(
        text=text,
        label=label,
        class_index=class_index,
        probability=value,
        words=scored,
        top_k=top_k,
        targeted=target is not None and not regression,
    )
    return explanation.to_html() if as_html else explanation


def _class_index(predictor: Any, name: str) -> int:
    """The index of the class `name` of a classifier predictor (`target` given by name)."""
    classes = list(predictor.get_classes()) if callable(
        getattr(predictor, "get_classes", None)) else None
    if classes is None:
        raise TypeError("`target` must be a class index: this predictor has no "
                        f"`get_classes()` to find a name in. Received: target={name!r:.80}")
    return class_position(classes, name)


def _check_target(target: Any, num_outputs: int | None, regression: bool) -> int | None:
    """Returns `target` as an int in ``[0, num_outputs - 1]``, or None where None is allowed.

    With `num_outputs` unknown (None) only the type and the sign are checked.
    """
    if target is None:
        if regression and num_outputs is not None and num_outputs > 1:
            raise ValueError(
                f"This regression predictor has {num_outputs} outputs; pass `target=` (an int "
                f"in [0, {num_outputs - 1}]) to say which one to explain. Received: target=None"
            )
        return None
    if num_outputs is None:
        return check_int(target, "target", 0)
    return check_int(target, "target", 0, num_outputs - 1)


def _declared_outputs(predictor: Any) -> int | None:
    """The number of outputs the predictor's labels declare (None when it does not say)."""
    for owner in (getattr(predictor, "labels", None), getattr(predictor, "preproc", None)):
        count = getattr(owner, "num_outputs", None)
        if isinstance(count, numbers.Integral) and not isinstance(count, bool) and count >= 1:
            return int(count)
    return None


def _without(text: str, start: int, end: int) -> str:
    """`text` with ``text[start:end]`` left out; a space takes its place between two
    characters that are not spaces, so the neighbours stay apart ("of,zebra" -> "of zebra",
    not "ofzebra", which would score the comma for hiding "zebra")."""
    before, after = text[:start], text[end:]
    if before and after and not before[-1].isspace() and not after[0].isspace():
        return f"{before} {after}"
    return before + after


def _words_seen(predictor: Any, text: str, words: list[tuple[str, int, int]]) -> list[int]:
    """Indices of the words the model reads, in order: those that make tokens and start
    before the text's first ``maxlen - 1`` tokens are used up (one position holds
    ``[CLS]``), so the word cut there is included.

    Whether a word makes tokens comes from one batched call to ``preproc.sequence_lengths``
    (a zero-width space, a soft hyphen or a lone combining mark makes none, cannot change
    the prediction and is not run). Where the text is cut is counted on the text itself, never
    by adding up the words' own counts: the tokenizer reads what `split_words` separates as
    one piece up to the next space ("the😀the😀" is one unknown token, not four). So the
    prefixes counted end where such a piece starts; their counts grow with their length,
    which a binary search needs (a prefix ending inside a piece can count more tokens than
    the whole piece). A predictor without ``sequence_lengths`` counts each word as one token
    (its ``maxlen`` words, else the first 512).
    """
    preproc = getattr(predictor, "preproc", None)
    maxlen = getattr(preproc, "maxlen", None)
    lengths = getattr(preproc, "sequence_lengths", None)
    if not maxlen or not callable(lengths):
        return list(range(min(len(words), int(maxlen) if maxlen else _DEFAULT_MAX_WORDS)))
    maxlen = int(maxlen)

    def fills(texts: list[str]) -> np.ndarray:  # positions taken, [CLS] included
        return np.asarray(lengths(texts), dtype=np.int64)

    makes_tokens = fills([word for word, _, _ in words]) > 1
    read = len(words)
    if fills([text])[0] >= maxlen:  # maybe cut: find the first word starting past the cut
        pieces = [match.start() for match in re.finditer(r"\S+", text)]
        piece_starts = [pieces[bisect.bisect_right(pieces, start) - 1] for _, start, _ in words]
        low, high = 0, len(words)
        while low < high:
            middle = (low + high) // 2
            if fills([text[: piece_starts[middle]]])[0] >= maxlen:
                high = middle
            else:
                low = middle + 1
        read = low
    return [i for i in range(read) if makes_tokens[i]]


def _label_mode(predictor: Any) -> str | None:
    mode = getattr(predictor, "label_mode", None)
    if mode is None:
        mode = getattr(getattr(predictor, "preproc", None), "label_mode", None)
    return mode


def _outputs(predictor: Any, texts: list[str]) -> np.ndarray:
    # A regression predictor has no probabilities: its predicted values are explained.
    if _label_mode(predictor) == "regression":
        return np.asarray(predictor.predict(texts), dtype=np.float64)
    return np.asarray(predictor.predict_proba(texts), dtype=np.float64)


def _predicted(
    predictor: Any, row: np.ndarray, target: int | None
) -> tuple[Any, int | None, float]:
    """Returns ``(label, class_index, probability_or_value)`` for one output row: of column
    `target`, else of the predicted class (a checked `target` is None only for a classifier
    or a single output)."""
    if row.shape[0] == 1:
        return float(row[0]), None, float(row[0])
    if _label_mode(predictor) == "regression":
        return float(row[target]), target, float(row[target])
    index = int(np.argmax(row)) if target is None else target
    get_classes = getattr(predictor, "get_classes", None)
    classes = get_classes() if callable(get_classes) else None
    label = str(classes[index]) if classes is not None and index < len(classes) else index
    return label, index, float(row[index])
