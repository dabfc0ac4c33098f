"""Tests for ktlite.text.explain: occlusion word attributions, plain data and HTML."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from ktlite.text.explain import Explanation, explain, split_words


class KeywordPredictor:
    """Class 1 ("spam") with probability 0.9 when "winner" is in the text, else 0.2."""

    label_mode = "multiclass"

    def __init__(self, maxlen: int | None = None) -> None:
        self.seen: list[list[str]] = []
        if maxlen is not None:
            self.preproc = type("P", (), {"maxlen": maxlen})()

    def get_classes(self) -> list[str]:
        return ["ham", "spam"]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.seen.append(list(texts))
        p = np.array([0.9 if "winner" in t else 0.2 for t in texts])
        p -= np.array([0.1 if "meeting" in t else 0.0 for t in texts])
        return np.stack([1 - p, p], axis=1)


class LengthRegressor:
    label_mode = "regression"

    def predict(self, texts: list[str]) -> list[float]:
        return [float(len(t.split())) + (5.0 if "huge" in t else 0.0) for t in texts]


def test_the_deciding_word_ranks_first_and_a_contrary_word_scores_negative():
    exp = explain(KeywordPredictor(), "you are a winner of our meeting prize", top_k=3)
    assert exp.label == "spam" and exp.class_index == 1
    assert exp.probability == pytest.approx(0.8)
    assert exp.top[0].word == "winner"
    assert exp.top[0].score == pytest.approx(0.7)
    scores = {w.word: w.score for w in exp.words}
    assert scores["meeting"] == pytest.approx(-0.1)
    assert scores["prize"] == pytest.approx(0.0)
    assert len(exp.top) == 3


def test_all_variants_go_to_the_model_in_one_call():
    predictor = KeywordPredictor()
    explain(predictor, "one two three four")
    assert len(predictor.seen) == 1
    assert predictor.seen[0] == [
        "one two three four", " two three four", "one  three four", "one two  four",
        "one two three ",
    ]


def test_words_past_maxlen_are_scored_zero_without_running_them():
    predictor = KeywordPredictor(maxlen=3)
    exp = explain(predictor, "a b c d winner")
    assert len(predictor.seen[0]) == 1 + 3
    assert [w.score for w in exp.words[3:]] == [0.0, 0.0]


def test_to_dict_is_plain_json_with_offsets_into_the_text():
    text = "Winner: winner!"
    exp = explain(KeywordPredictor(), text, top_k=2)
    data = json.loads(json.dumps(exp.to_dict()))
    assert data["label"] == "spam" and data["method"] == "occlusion"
    assert [w["word"] for w in data["words"]] == ["Winner", ":", "winner", "!"]
    for word in data["words"]:
        assert text[word["start"]: word["end"]] == word["word"]
    assert len(data["top"]) == 2


class TaggedClassPredictor(KeywordPredictor):
    def get_classes(self) -> list[str]:
        return ["ham", "<b>spam</b>"]


def test_html_escapes_the_text_and_labels():
    text = 'winner <script>alert("x")</script> & co'
    html = explain(TaggedClassPredictor(), text, as_html=True)
    assert isinstance(html, str)
    assert "<script" not in html and "<b>spam" not in html
    assert "&lt;b&gt;spam&lt;/b&gt;" in html
    assert "&lt;" in html and "&amp;" in html and "&quot;" in html
    exp = explain(TaggedClassPredictor(), text)
    assert exp._repr_html_() == html


def test_regression_explains_the_predicted_value():
    exp = explain(LengthRegressor(), "a huge house")
    assert exp.label == pytest.approx(8.0) and exp.class_index is None
    assert exp.top[0].word == "huge" and exp.top[0].score == pytest.approx(6.0)


def test_split_words_separates_punctuation_and_cjk_characters():
    assert [w for w, _, _ in split_words("Hi, 世界! don't")] == [
        "Hi", ",", "世", "界", "!", "don", "'", "t",
    ]


def test_explanation_is_a_frozen_dataclass():
    exp = explain(KeywordPredictor(), "winner")
    assert isinstance(exp, Explanation)
    with pytest.raises(AttributeError):
        exp.label = "ham"


@pytest.mark.parametrize(
    "text, top_k, error, match",
    [
        (123, 10, TypeError, "text=123"),
        ("   ...", 10, None, None),
        ("  \n ", 10, ValueError, "at least one word"),
        ("winner", 0, ValueError, "`top_k` must be a positive int. Received: top_k=0"),
        ("winner", 2.0, TypeError, "`top_k` must be a positive int. Received: top_k=2.0"),
        ("winner", "3", TypeError, "Received: top_k='3'"),
        ("winner", True, TypeError, "Received: top_k=True"),
    ],
)
def test_invalid_arguments_are_named(text, top_k, error, match):
    if error is None:
        explain(KeywordPredictor(), text, top_k=top_k)  # punctuation alone is still words
        return
    with pytest.raises(error, match=match):
        explain(KeywordPredictor(), text, top_k=top_k)


@pytest.mark.parametrize("as_html", [1, "yes", None])
def test_as_html_of_the_wrong_type_is_a_type_error(as_html):
    with pytest.raises(TypeError, match="`as_html` must be True or False. Received: "
                                        f"as_html={as_html!r}"):
        explain(KeywordPredictor(), "winner", as_html=as_html)
    assert isinstance(explain(KeywordPredictor(), "winner", as_html=np.bool_(True)), str)


def test_predictor_without_predict_proba_is_refused():
    with pytest.raises(TypeError, match="predict_proba"):
        explain(object(), "winner")


FILLER = (
    "the a of and to in is it that was for on are with as his they be at one have this from "
    "or had by not but what all were we when your can said there use an each which she do how"
).split()


def planted_texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Filler sentences; exactly the ones holding the planted token "zorp" are "yes"."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        words = [str(w) for w in rng.choice(FILLER, size=int(rng.integers(5, 11)))]
        if i % 2:
            words.insert(int(rng.integers(0, len(words) + 1)), "zorp")
        texts.append(" ".join(words))
        labels.append("yes" if i % 2 else "no")
    return texts, labels


@pytest.fixture(scope="module")
def planted_predictor():
    import keras

    import ktlite
    from ktlite import text
    from ktlite.data import make_dataset

    keras.utils.set_random_seed(int(os.environ.get("KTLITE_TEST_SEED", "0")))
    x, y = planted_texts(240, seed=0)
    trn, _, preproc = text.texts_from_array(x, y, maxlen=16, vocab_size=200, verbose=0)
    model = text.text_classifier(
        "transformer", trn, preproc=preproc, embed_dim=16, num_heads=2, num_layers=1,
        learning_rate=3e-3, verbose=0,
    )
    dataset, _ = make_dataset(trn, batch_size=32, shuffle=True, seed=0)
    model.fit(dataset, epochs=8, shuffle=False, verbose=0)  # the dataset shuffles itself
    return ktlite.get_predictor(model, preproc)


def test_planted_token_that_decides_the_class_is_ranked_first(planted_predictor):
    texts, labels = planted_texts(20, seed=1)
    assert planted_predictor.predict(texts) == labels  # the tiny model learned the rule
    for sentence in texts[1::2]:
        exp = explain(planted_predictor, sentence, top_k=3)
        assert exp.label == "yes"
        assert exp.top[0].word == "zorp", exp.top
        assert exp.top[0].score > 0.3
        assert all(abs(w.score) < exp.top[0].score for w in exp.words if w.word != "zorp")


def test_predictor_explain_method_returns_the_same_data_and_html(planted_predictor):
    sentence = "we said zorp to the <b>cat</b>"
    exp = planted_predictor.explain(sentence, top_k=2)
    assert exp.to_dict() == explain(planted_predictor, sentence, top_k=2).to_dict()
    html = planted_predictor.explain(sentence, as_html=True)
    assert "zorp" in html and "<b>cat" not in html and "&lt;" in html


@pytest.mark.parametrize("text, words", [
    ("नमस्ते दुनिया", ["नमस्ते", "दुनिया"]),               # vowel signs and virama
    ("مَرْحَبًا", ["مَرْحَبًا"]),                          # Arabic vowel points
    ("cafe\u0301 ok", ["cafe\u0301", "ok"]),              # a combining accent
    ("👍🏽 👨\u200d👩\u200d👧", ["👍🏽", "👨\u200d👩\u200d👧"]),  # skin tone, joined family
])
def test_split_words_keeps_combining_marks_and_joined_emoji_whole(text, words):
    units = split_words(text)
    assert [w for w, _, _ in units] == words
    assert all(text[start:end] == word for word, start, end in units)


class InvisibleAwarePreproc:
    """Counts tokens like the WordPiece tokenizer: invisible characters make none."""

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen

    def sequence_lengths(self, texts: list[str]) -> np.ndarray:
        words = [[w for w in t.split() if w.strip("\u200b\u00ad\ufeff\u0301")] for t in texts]
        return np.minimum(np.array([1 + len(w) for w in words]), self.maxlen)


def test_words_that_make_no_tokens_take_no_room_in_maxlen():
    predictor = KeywordPredictor()
    predictor.preproc = InvisibleAwarePreproc(maxlen=3)
    text = "\u200b \u00ad \ufeff \u0301 " * 10 + "you winner"
    exp = explain(predictor, text)
    # Only the two words the model reads are run; the invisible ones score 0 unrun.
    assert len(predictor.seen) == 1 and len(predictor.seen[0]) == 1 + 2
    scores = {w.word: w.score for w in exp.words}
    assert scores["winner"] == pytest.approx(0.7)
    assert all(w.score == 0.0 for w in exp.words if w.word not in ("you", "winner"))


def test_text_of_only_invisible_words_is_refused_like_a_text_without_words():
    predictor = KeywordPredictor()
    predictor.preproc = InvisibleAwarePreproc(maxlen=8)
    with pytest.raises(ValueError, match="at least one word"):
        explain(predictor, "\u200b \u00ad\ufeff \u0301")
    assert predictor.seen == []


def test_zero_width_spaces_do_not_hide_the_deciding_word(planted_predictor):
    sentence = "\u200b " * 40 + "we said zorp to the cat"
    exp = explain(planted_predictor, sentence, top_k=1)
    assert exp.label == "yes"
    assert exp.top[0].word == "zorp" and exp.top[0].score > 0.3
    for invisible in ("\u200b \u00ad \ufeff", "\u0301 " * 5):
        with pytest.raises(ValueError, match="at least one word"):
            explain(planted_predictor, invisible)


class WholeWordPredictor(KeywordPredictor):
    """Class 1 with probability 0.9 when "winner" is a whole word of the text, else 0.2."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.seen.append(list(texts))
        p = np.array([0.9 if "winner" in re.findall(r"\w+", t) else 0.2 for t in texts])
        return np.stack([1 - p, p], axis=1)


def test_leaving_out_a_mark_between_words_keeps_the_words_apart():
    predictor = WholeWordPredictor()
    exp = explain(predictor, "our,winner won")
    # The comma's variant reads "our winner won", not "ourwinner won" (no winner left).
    assert predictor.seen[0][2] == "our winner won"
    scores = {w.word: w.score for w in exp.words}
    assert scores[","] == pytest.approx(0.0)
    assert scores["winner"] == pytest.approx(0.7)


class WhitespaceTokens(InvisibleAwarePreproc):
    """One token per run of non-space characters, like WordPiece on a word it cannot split:
    "x😀x😀" is one (unknown) token though `split_words` finds four units in it."""

    def sequence_lengths(self, texts: list[str]) -> np.ndarray:
        return np.minimum(np.array([1 + len(t.split()) for t in texts]), self.maxlen)


def test_the_maxlen_cut_is_counted_on_the_text_not_on_its_words_one_by_one():
    predictor = KeywordPredictor()
    predictor.preproc = WhitespaceTokens(maxlen=3)
    exp = explain(predictor, "x😀x😀x😀x😀 winner wins")
    # The model reads two tokens, "x😀x😀x😀x😀" and "winner": winner is run and scored.
    assert {w.word: w.score for w in exp.words}["winner"] == pytest.approx(0.7)
    assert [text for text in predictor.seen[0] if "wins" not in text] == []  # wins: unrun


class UnknownJoins(InvisibleAwarePreproc):
    """WordPiece-like counts: a run of letters splits into pieces of 3, but a run holding an
    unknown symbol is one [UNK], so a prefix ending inside a run can count more tokens than
    the whole run."""

    def sequence_lengths(self, texts: list[str]) -> np.ndarray:
        def count(run):
            return 1 if "😀" in run else -(-len(run) // 3)

        return np.minimum([1 + sum(count(r) for r in t.split()) for t in texts], self.maxlen)


def test_the_maxlen_cut_holds_where_a_prefix_counts_more_than_the_text_after_it():
    predictor = KeywordPredictor()
    predictor.preproc = UnknownJoins(maxlen=4)
    # [CLS] aa [UNK] winner...: "aa bbbbbbbb" alone would count 1 + 1 + 3 tokens.
    exp = explain(predictor, "aa bbbbbbbb😀 winner")
    assert {w.word: w.score for w in exp.words}["winner"] == pytest.approx(0.7)


def test_a_word_after_symbols_the_tokenizer_joins_is_explained(planted_predictor):
    sentence = "the😀" * 8 + " zorp"  # one unknown token, then the deciding word
    exp = explain(planted_predictor, sentence, top_k=1)
    assert exp.label == "yes"
    assert exp.top[0].word == "zorp" and exp.top[0].score > 0.3


# ---------------------------------------------------------------- target
def test_class_target_explains_that_class_instead_of_the_predicted_one():
    exp = explain(KeywordPredictor(), "you are a winner of our meeting prize", target=0)
    assert exp.label == "ham" and exp.class_index == 0
    assert exp.probability == pytest.approx(0.2)
    scores = {w.word: w.score for w in exp.words}
    # Without "winner" ham rises from 0.2 to 0.9; without "meeting" it falls to 0.1.
    assert scores["winner"] == pytest.approx(-0.7)
    assert scores["meeting"] == pytest.approx(0.1)
    assert exp.top[0].word == "winner"
    chosen, predicted = (explain(KeywordPredictor(), "a winner", **kw)
                         for kw in ({"target": 1}, {}))
    assert {**chosen.to_dict(), "targeted": False} == predicted.to_dict()
    assert chosen.targeted and not predicted.targeted
    # A class is named as the image predictor's is: by name or by index.
    by_name = explain(KeywordPredictor(), "you are a winner of our meeting prize", target="ham")
    assert by_name.to_dict() == exp.to_dict()
    # The HTML does not call a chosen class the prediction.
    assert "<b>Explained:</b> ham" in exp.to_html()
    assert "<b>Predicted:</b> spam" in predicted.to_html()


class TagPredictor:
    """Multilabel over ["cat", "dog", "pet"]: 0.9 for each tag word in the text, else 0.1."""

    label_mode = "multilabel"

    def get_classes(self) -> list[str]:
        return ["cat", "dog", "pet"]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.array([[0.9 if tag in t.split() else 0.1 for tag in self.get_classes()]
                         for t in texts])


def test_multilabel_target_explains_the_chosen_label_not_the_most_probable():
    exp = explain(TagPredictor(), "my cat is a pet", target=2)
    assert exp.label == "pet" and exp.class_index == 2
    assert exp.probability == pytest.approx(0.9)
    assert exp.top[0].word == "pet" and exp.top[0].score == pytest.approx(0.8)
    assert {w.word: w.score for w in exp.words}["cat"] == pytest.approx(0.0)
    assert explain(TagPredictor(), "my cat is a pet").label == "cat"  # default: most probable


class TwoOutputRegressor:
    """Output 0: the word count; output 1: 5 when "huge" is in the text, else 0."""

    label_mode = "regression"

    def __init__(self, declared: bool = False) -> None:
        self.seen: list[list[str]] = []
        if declared:  # says how many outputs it has, as a TextPredictor's preproc does
            self.preproc = type("P", (), {"num_outputs": 2})()

    def predict(self, texts: list[str]) -> list[list[float]]:
        self.seen.append(list(texts))
        return [[float(len(t.split())), 5.0 if "huge" in t else 0.0] for t in texts]


@pytest.mark.parametrize("declared", [False, True])
def test_regression_target_picks_the_output_column(declared):
    text = "a huge old house"
    first = explain(TwoOutputRegressor(declared), text, target=0)
    second = explain(TwoOutputRegressor(declared), text, target=1)
    assert (first.label, first.class_index) == (pytest.approx(4.0), 0)
    assert (second.label, second.class_index) == (pytest.approx(5.0), 1)
    assert second.probability == pytest.approx(5.0)
    assert {w.word: w.score for w in first.words} == pytest.approx(
        {"a": 1.0, "huge": 1.0, "old": 1.0, "house": 1.0})
    assert {w.word: w.score for w in second.words} == pytest.approx(
        {"a": 0.0, "huge": 5.0, "old": 0.0, "house": 0.0})


@pytest.mark.parametrize("declared", [False, True])
def test_multi_output_regression_without_target_is_refused(declared):
    predictor = TwoOutputRegressor(declared)
    with pytest.raises(ValueError, match=r"has 2 outputs; pass `target=` \(an int in \[0, 1\]\)"):
        explain(predictor, "a huge house")
    assert len(predictor.seen) == (0 if declared else 1)  # refused before the model runs


def test_single_output_regression_takes_target_zero_or_none():
    assert explain(LengthRegressor(), "a huge house", target=0).to_dict() == explain(
        LengthRegressor(), "a huge house").to_dict()
    with pytest.raises(ValueError, match=r"`target` must be an int in \[0, 0\]. "
                                         r"Received: target=1"):
        explain(LengthRegressor(), "a huge house", target=1)


@pytest.mark.parametrize("target, error, match", [
    (1.0, TypeError, r"`target` must be an int in \[0, 1\]. Received: target=1.0"),
    (True, TypeError, r"`target` must be an int in \[0, 1\]. Received: target=True"),
    ([1], TypeError, r"Received: target=\[1\]"),
    (2, ValueError, r"`target` must be an int in \[0, 1\]. Received: target=2"),
    (-1, ValueError, r"`target` must be an int in \[0, 1\]. Received: target=-1"),
])
def test_invalid_targets_are_named_with_the_valid_range(target, error, match):
    predictor = KeywordPredictor()
    predictor.preproc = type("P", (), {"num_outputs": 2})()
    with pytest.raises(error, match=match):
        explain(predictor, "a winner", target=target)
    assert predictor.seen == []  # the predictor declares its outputs: refused unrun
    undeclared = KeywordPredictor()  # its outputs are known only once it has run
    with pytest.raises(error, match=r"`target` must be an int"):
        explain(undeclared, "a winner", target=target)
    if error is ValueError and target > 0:
        with pytest.raises(ValueError, match=match):
            explain(undeclared, "a winner", target=target)


def test_a_target_naming_no_class_is_refused_with_the_classes():
    with pytest.raises(ValueError, match=r"`target` must be a class index or one of the "
                                         r"classes \['ham', 'spam'\]. Received: target='1'"):
        explain(KeywordPredictor(), "a winner", target="1")
    with pytest.raises(TypeError, match=r"`target` must be an int >= 0. Received: target='1'"):
        explain(LengthRegressor(), "a huge house", target="1")  # no classes to name


def test_numpy_int_target_is_taken():
    exp = explain(KeywordPredictor(), "a winner", target=np.int64(0))
    assert exp.class_index == 0 and type(exp.class_index) is int
    assert json.dumps(exp.to_dict())


@pytest.fixture(scope="module")
def two_target_predictor():
    """A fastText regressor with two outputs: output 0 follows "blip", output 1 "zorp"."""
    import keras

    import ktlite
    from ktlite import text

    keras.utils.set_random_seed(int(os.environ.get("KTLITE_TEST_SEED", "0")))
    rng = np.random.default_rng(0)
    x, y = [], []
    for i in range(240):
        words = [str(w) for w in rng.choice(FILLER, size=int(rng.integers(4, 8)))]
        blip, zorp = i % 2 == 1, (i // 2) % 2 == 1
        for planted, present in (("blip", blip), ("zorp", zorp)):
            if present:
                words.insert(int(rng.integers(0, len(words) + 1)), planted)
        x.append(" ".join(words))
        y.append([1.0 if blip else 0.0, 3.0 if zorp else 0.0])
    trn, _, preproc = text.texts_from_array(
        x, np.array(y, dtype=np.float32), maxlen=16, vocab_size=200, val_pct=0.0,
        label_mode="regression", verbose=0,
    )
    assert preproc.label_mode == "regression" and preproc.num_outputs == 2
    model = text.text_regression_model("fasttext", trn, preproc=preproc, embed_dim=16,
                                       learning_rate=0.02, verbose=0)
    model.fit(preproc.preprocess(x), trn.y, epochs=30, batch_size=16, verbose=0)
    return ktlite.get_predictor(model, preproc)


def test_multi_target_regression_scores_words_by_the_chosen_outputs_drop(two_target_predictor):
    predictor = two_target_predictor
    sentence = "we said blip and zorp to the cat"
    exp = predictor.explain(sentence, target=1)
    variants = [sentence] + [sentence[:s] + sentence[e:] for _, s, e in split_words(sentence)]
    direct = np.asarray(predictor.predict(variants), dtype=np.float64)[:, 1]
    assert exp.class_index == 1
    assert exp.label == pytest.approx(direct[0], abs=1e-5)
    np.testing.assert_allclose([w.score for w in exp.words], direct[0] - direct[1:],
                               atol=1e-5)
    assert exp.top[0].word == "zorp", exp.top
    assert explain(predictor, sentence, target=0).top[0].word == "blip"
    with pytest.raises(ValueError, match="has 2 outputs; pass `target=`"):
        predictor.explain(sentence)
    with pytest.raises(ValueError, match=r"`target` must be an int in \[0, 1\]. "
                                         r"Received: target=2"):
        predictor.explain(sentence, target=2)
