"""Tests for ktlite.text.preprocessor: vocabulary, in-graph tokenization, undo, save/load."""

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from folders import assert_quotes_nothing_crafted
from ktlite.text import TextPreprocessor
from ktlite.text.normalization import normalize_texts
from ktlite.text.preprocessor import suggest_maxlen, validate_texts
from ktlite.text.vocabulary import (
    CLS_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    _hf_tokenizer,
    learn_wordpiece_vocab,
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A café in Zürich serves naïve crème brûlée!",
    "Numbers like 3.14, 42 and 1,000,000 appear here.",
    "我喜欢机器学习 and natural language processing",
    "日本語のテキストも少し",
    "한국어 텍스트 예시입니다",
    "Emoji 😀 and symbols like © € ™ are fine 🚀",
    "e-mail: someone@example.com (not real) [brackets] {braces}",
    "Ελληνικά γράμματα και ΣΊΣΥΦΟΣ",
    "İstanbul straße groß ÅNGSTRÖM",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "quotes 'single' \"double\" «guillemets» — dashes – and…",
] * 3

VARIED = [
    "The QUICK brown fox!!",
    "café CAFÉ cafe\u0301 naïve",
    "3.14159 + 2 = 5.14159?",
    "我喜欢机器学习",
    "机器学习很有趣，对吧？",
    "emoji 😀😀 🚀 mixed😀text",
    "Zürich, Straße; İstanbul: ÅNGSTRÖM",
    "zero\u200bwidth and control\x00chars\x07 here",
    "unseenwords like xylophonequark",
    "한국어 and 日本語のテキスト",
    "a$b^c`d~e|f<g>h=i",
    "   leading and trailing   ",
    "",
    "«guillemets» — dashes – and… ellipses",
    "Ελληνικά ΣΊΣΥΦΟΣ",
]


@pytest.fixture(scope="module")
def preproc():
    return TextPreprocessor(maxlen=24, vocab_size=400).fit(CORPUS, ["a", "b", "c"] * 12)


def test_special_tokens_come_first_with_pad_zero(preproc):
    assert tuple(preproc.vocab[: len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS
    assert preproc.vocab[0] == "[PAD]" and preproc.pad_id == 0
    assert all(t.startswith("##") or not t.startswith("#") for t in preproc.vocab)


def test_vocab_size_is_the_actual_vocab_length(preproc):
    assert preproc.vocab_size == len(preproc.vocab) <= 400
    assert preproc.max_vocab_size == 400


def test_tokenize_returns_int32_batch_by_maxlen_with_cls_first_and_zero_padding(preproc):
    ids = preproc.tokenize(tf.constant(["the quick fox", "dog"]))
    assert ids.dtype == tf.int32 and ids.shape == (2, 24)
    ids = ids.numpy()
    assert (ids[:, 0] == CLS_ID).all()
    assert (ids[1, 3:] == 0).all() and (ids[1, 1:2] != 0).all()


def test_tokenize_truncates_to_maxlen(preproc):
    ids = preproc.preprocess(["fox " * 100])
    assert ids.shape == (1, 24)
    assert ids[0, 0] == CLS_ID and (ids[0, 1:] != 0).all()


def test_tokenize_accepts_scalar_and_column_inputs(preproc):
    one = preproc.tokenize(tf.constant("the fox"))
    col = preproc.tokenize(tf.constant([["the fox"], ["dog"]]))
    assert one.shape == (1, 24) and col.shape == (2, 24)
    np.testing.assert_array_equal(one.numpy()[0], col.numpy()[0])


def test_tokenize_in_tf_data_and_tf_function_matches_preprocess(preproc):
    expected = preproc.preprocess(VARIED)
    ds = tf.data.Dataset.from_tensor_slices(VARIED).batch(4).map(preproc.tokenize)
    got = np.concatenate([b.numpy() for b in ds])
    np.testing.assert_array_equal(got, expected)
    fn = tf.function(preproc.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    np.testing.assert_array_equal(fn(tf.constant(VARIED)).numpy(), expected)


def test_preprocess_returns_numpy_int32(preproc):
    ids = preproc.preprocess(["the fox", "dog"])
    assert isinstance(ids, np.ndarray) and ids.dtype == np.int32 and ids.shape == (2, 24)
    assert preproc.preprocess([]).shape == (0, 24)


def test_chinese_is_one_token_per_character_and_undo_round_trips(preproc):
    ids = preproc.preprocess(["我喜欢机器学习"])[0]
    tokens = [preproc.vocab[i] for i in ids if i not in (0, CLS_ID)]
    assert tokens == list("我喜欢机器学习")
    assert preproc.undo(ids[None, :]) == ["我喜欢机器学习"]


def test_unknown_characters_become_unk(preproc):
    ids = preproc.preprocess(["ъ"])[0]
    assert ids[1] == UNK_ID


def test_lowercase_default_strips_case_and_accents(preproc):
    a, b, c = preproc.preprocess(["Café NAÏVE", "cafe naive", "cafe\u0301 naive"])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, c)


def test_lowercase_false_keeps_case_and_accents_but_normalizes_nfc():
    corpus = ["Café café Cafe cafe naïve", "Zürich zurich"] * 5
    cased = TextPreprocessor(maxlen=16, vocab_size=200, lowercase=False).fit(corpus)
    composed, decomposed, plain, upper = cased.preprocess(
        ["café", "cafe\u0301", "cafe", "Café"]
    )
    np.testing.assert_array_equal(composed, decomposed)
    assert not np.array_equal(composed, plain)
    assert not np.array_equal(composed, upper)
    assert cased.undo(upper[None, :]) == ["Café"]


@pytest.mark.parametrize("lowercase", [True, False])
def test_tokenizers_library_and_tensorflow_text_agree(lowercase):
    vocab = learn_wordpiece_vocab(CORPUS, vocab_size=300, lowercase=lowercase)
    preproc = TextPreprocessor(maxlen=64, vocab_size=300, lowercase=lowercase)
    preproc._set_vocab(vocab)
    hf = _hf_tokenizer(vocab)
    texts = VARIED + CORPUS[:12]
    tf_ids = preproc.preprocess(texts)
    for text, normalized, row in zip(texts, normalize_texts(texts, lowercase), tf_ids):
        expected = hf.encode(normalized).ids
        got = [int(i) for i in row[1:] if i != 0]
        assert got == expected, (text, [vocab[i] for i in got], [vocab[i] for i in expected])


def test_a_vocabulary_the_characters_push_past_vocab_size_warns():
    texts = ["abcdefghij klmnopqrst uvwxyz", "zyx wvu tsr"]
    with pytest.warns(UserWarning, match=r"holds \d+ pieces, above vocab_size=20"):
        assert len(learn_wordpiece_vocab(texts, vocab_size=20)) > 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(learn_wordpiece_vocab(texts, vocab_size=200)) <= 200


def test_undo_joins_wordpieces_and_drops_special_tokens(preproc):
    text = "The quick brown fox jumps over the lazy dog."
    assert preproc.undo(preproc.preprocess([text])) == [text.lower()]
    assert preproc.undo([CLS_ID, 0, 0]) == [""]


def test_undo_rejects_ids_outside_the_vocab(preproc):
    with pytest.raises(ValueError, match="ids"):
        preproc.undo([[2, len(preproc.vocab)]])


def test_suggest_maxlen_rounds_up_to_a_multiple_of_16_within_limits():
    assert suggest_maxlen(np.array([5] * 100)) == 16
    assert suggest_maxlen(np.array([40] * 100)) == 48
    assert suggest_maxlen(np.array([47] * 100)) == 48
    assert suggest_maxlen(np.array([5000] * 100)) == 512


def test_maxlen_none_is_chosen_from_training_texts():
    preproc = TextPreprocessor(vocab_size=200).fit(["word " * 30] * 10)
    assert preproc.maxlen == 32


def test_config_is_json_and_holds_no_vocab(preproc):
    config = preproc.get_config()
    json.dumps(config, allow_nan=False)
    assert "vocab" not in config and config["vocab_size"] == len(preproc.vocab)
    assert config["class_names"] == ["a", "b", "c"] and config["label_mode"] == "multiclass"


def test_save_and_load_round_trip(preproc, tmp_path):
    preproc.save(tmp_path / "p")
    assert sorted(os.listdir(tmp_path / "p")) == ["preprocessor.json", "vocab.txt"]
    loaded = TextPreprocessor.load(tmp_path / "p")
    assert loaded.get_config() == preproc.get_config()
    assert loaded.vocab == preproc.vocab
    np.testing.assert_array_equal(loaded.preprocess(VARIED), preproc.preprocess(VARIED))
    assert loaded.decode_predictions([[0.1, 0.7, 0.2]]) == ["b"]


def _saved(preproc, tmp_path):
    folder = tmp_path / "p"
    preproc.save(folder)
    return folder


def test_load_refuses_a_missing_folder_or_file(preproc, tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved TextPreprocessor folder.*nope"):
        TextPreprocessor.load(tmp_path / "nope")
    folder = _saved(preproc, tmp_path)
    os.remove(folder / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="vocab.txt is missing from .*p'"):
        TextPreprocessor.load(folder)


def test_load_refuses_corrupt_json(preproc, tmp_path):
    folder = _saved(preproc, tmp_path)
    (folder / "preprocessor.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="corrupt"):
        TextPreprocessor.load(folder)


def _edit_config(folder, **changes):
    path = folder / "preprocessor.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(changes)
    path.write_text(json.dumps(config), encoding="utf-8")


def test_load_refuses_unknown_keys(preproc, tmp_path):
    folder = _saved(preproc, tmp_path)
    _edit_config(folder, surprise=1)
    with pytest.raises(ValueError, match="p': The config has unknown keys; expected only"):
        TextPreprocessor.load(folder)
    with pytest.raises(ValueError, match=r"unknown keys.*Received: \['surprise'\]"):
        TextPreprocessor.from_config({**preproc.get_config(), "surprise": 1})


def test_load_refuses_an_unknown_format_version(preproc, tmp_path):
    folder = _saved(preproc, tmp_path)
    _edit_config(folder, format_version=99)
    with pytest.raises(ValueError, match="format_version"):
        TextPreprocessor.load(folder)


def test_load_refuses_invalid_values(preproc, tmp_path):
    folder = _saved(preproc, tmp_path)
    _edit_config(folder, maxlen="64")
    with pytest.raises(ValueError, match="invalid maxlen"):
        TextPreprocessor.load(folder)
    _edit_config(folder, maxlen=2**31)  # past int32: the graph's widths would overflow
    with pytest.raises(ValueError, match="invalid maxlen"):
        TextPreprocessor.load(folder)


def test_load_quotes_nothing_from_a_file_that_failed_validation(preproc, tmp_path):
    folder = _saved(preproc, tmp_path)
    assert_quotes_nothing_crafted(lambda: TextPreprocessor.load(folder),
                                  folder / "preprocessor.json")


def test_load_refuses_a_vocab_size_mismatch(preproc, tmp_path):
    folder = _saved(preproc, tmp_path)
    with open(folder / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extratoken\n")
    with pytest.raises(ValueError, match="vocab_size"):
        TextPreprocessor.load(folder)


def test_load_refuses_a_vocab_without_special_tokens_first(preproc, tmp_path):
    folder = _saved(preproc, tmp_path)
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
    lines[0], lines[5] = lines[5], lines[0]
    (folder / "vocab.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match="special tokens"):
        TextPreprocessor.load(folder)


def test_load_refuses_a_vocab_that_is_not_utf8(preproc, tmp_path):
    folder = _saved(preproc, tmp_path)
    (folder / "vocab.txt").write_bytes(b"\xff\xfe\x00bad\n")
    with pytest.raises(ValueError, match="UTF-8"):
        TextPreprocessor.load(folder)


def test_unfitted_preprocessor_refuses_to_tokenize_or_save(tmp_path):
    preproc = TextPreprocessor()
    with pytest.raises(ValueError, match="no vocabulary"):
        preproc.preprocess(["x"])
    with pytest.raises(ValueError, match="no vocabulary"):
        preproc.save(tmp_path / "p")
    with pytest.raises(ValueError, match="labels are not fitted yet"):
        preproc.encode_labels(["a"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"maxlen": 1}, "maxlen"),
        ({"maxlen": 2**31}, r"`maxlen` must be an int in \[2, 65536\] or None"),
        ({"vocab_size": 3}, "vocab_size"),
        ({"label_mode": "binary"}, "label_mode"),
        ({"class_names": ["only"]}, "class_names"),
    ],
)
def test_constructor_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TextPreprocessor(**kwargs)


@pytest.mark.parametrize("vocab_size", [2**20 + 1, 10**9])
def test_a_vocab_size_past_two_to_the_twenty_is_refused_before_any_training(vocab_size):
    # The tokenizers trainer aborts the interpreter (uncatchable) when it cannot reserve
    # what the size asks for: 70 GB at 10**9.
    with pytest.raises(ValueError, match=r"`vocab_size` must be an int in \[6, 1048576\]. "
                                         rf"Received: vocab_size={vocab_size}"):
        TextPreprocessor(vocab_size=vocab_size)
    assert TextPreprocessor(vocab_size=np.int64(2**20)).max_vocab_size == 2**20


def test_learn_wordpiece_vocab_refuses_a_vocab_size_past_two_to_the_twenty():
    # Only just past the bound: before the check, a size as large as 10**9 reached the
    # trainer and aborted the interpreter.
    with pytest.raises(ValueError, match=r"`vocab_size` must be an int in \[6, 1048576\]. "
                                         r"Received: vocab_size=1048577"):
        learn_wordpiece_vocab(["a cat"], vocab_size=2**20 + 1)
    with pytest.raises(TypeError, match="`vocab_size` must be an int in"):
        learn_wordpiece_vocab(["a cat"], vocab_size="100")


@pytest.mark.parametrize("verbose, error", [("yes", TypeError), (None, TypeError),
                                            (True, TypeError), (-1, ValueError), (3, ValueError)])
def test_fit_and_fit_vocab_refuse_a_verbose_that_is_no_level(verbose, error):
    with pytest.raises(error, match=r"`verbose` must be 0, 1 or 2. Received: verbose="):
        TextPreprocessor(vocab_size=50).fit(["a b", "b c"], ["x", "y"], verbose=verbose)
    with pytest.raises(error, match=r"`verbose` must be 0, 1 or 2. Received: verbose="):
        TextPreprocessor(vocab_size=50).fit_vocab(["a b", "b c"], verbose=verbose)


def test_a_size_that_is_no_int_is_a_type_error():
    with pytest.raises(TypeError, match=r"`maxlen` must be an int in \[2, 65536\] or None. "
                                        "Received: maxlen=3.5"):
        TextPreprocessor(maxlen=3.5)


def test_a_flag_that_is_no_bool_is_a_type_error():
    with pytest.raises(TypeError, match="`lowercase` must be True or False. Received: "
                                        "lowercase='yes'"):
        TextPreprocessor(lowercase="yes")


def test_validate_texts_names_the_bad_index():
    # A missing value is a wrong value; anything else that is not a string a wrong type.
    with pytest.raises(ValueError, match="item 1 is NoneType .missing value."):
        validate_texts(["ok", None, "ok"])
    with pytest.raises(ValueError, match="item 2 is float .missing value."):
        validate_texts(["ok", "ok", float("nan")])
    # pandas' string dtype (and the pyarrow backend) holds NA; NumPy arrays float32 NaN.
    for missing in (pd.NA, pd.NaT, np.float32("nan"), np.datetime64("NaT")):
        with pytest.raises(ValueError, match=r"item 1 is \w+ \(missing value\)"):
            validate_texts(pd.Series(["ok", missing], dtype=object))
    with pytest.raises(ValueError, match=r"item 1 is NAType \(missing value\)"):
        validate_texts(pd.Series(["ok", None, "ok"], dtype="string"))
    with pytest.raises(TypeError, match="item 0 is bytes"):
        validate_texts([b"raw"])
    with pytest.raises(TypeError, match="single string"):
        validate_texts("just one text")
    with pytest.raises(TypeError, match=r"not bytes; decode them first. Received: texts=b'raw'"):
        validate_texts(b"raw")
    with pytest.raises(TypeError, match="Received: texts=None"):
        validate_texts(None)
    with pytest.raises(ValueError, match="must not be empty"):
        validate_texts([])


def test_fit_refuses_texts_without_words_naming_the_argument():
    with pytest.raises(ValueError, match="`texts` must hold words .* its 2 texts hold only"):
        TextPreprocessor(vocab_size=100).fit(["   ", "\t"])
    from ktlite.text import texts_from_array

    with pytest.raises(ValueError, match="`x_train` must hold words"):  # it named `texts`
        texts_from_array(["  ", " ", "\t", " "], ["a", "b", "a", "b"], val_pct=0, verbose=0)


def test_a_vocabulary_with_a_control_character_is_refused_at_learn_time():
    preproc = TextPreprocessor(maxlen=8, vocab_size=40)
    with pytest.raises(ValueError, match="control characters") as info:
        preproc._set_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ok", "no\x00pe"])
    assert "no\x00pe" not in str(info.value)


def test_tokenize_to_a_width_pads_or_cuts_there_and_never_past_maxlen(preproc):
    full = preproc.preprocess(VARIED)
    for width in (4, 16, 24, 40):
        ids = preproc.tokenize(tf.constant(VARIED), width=tf.constant(width)).numpy()
        np.testing.assert_array_equal(ids, full[:, : min(width, 24)])


def test_tokenize_to_the_longest_text_rounds_up_to_16_within_maxlen(preproc):
    assert preproc.tokenize(tf.constant(["the fox", "dog"]), width="longest").shape == (2, 16)
    assert preproc.tokenize(tf.constant(["fox " * 30]), width="longest").shape == (1, 24)
    with pytest.raises(ValueError, match="width"):
        preproc.tokenize(tf.constant(["fox"]), width="max")


@pytest.mark.parametrize("width, error", [
    (0, ValueError), (-3, ValueError), (np.int64(0), ValueError), (np.array(0), ValueError),
    (tf.constant(0), ValueError), (tf.constant(-3), ValueError),
    (2.5, TypeError), (True, TypeError), (tf.constant(2.0), TypeError),
])
def test_tokenize_refuses_a_width_that_is_no_int_above_zero(preproc, width, error):
    with pytest.raises(error, match="`width` must be .*Received: width"):
        preproc.tokenize(tf.constant(["the fox"]), width=width)


def test_tokenize_to_width_one_keeps_cls_alone(preproc):
    ids = preproc.tokenize(tf.constant(["the fox", "dog"]), width=np.int64(1)).numpy()
    assert ids.shape == (2, 1) and (ids == preproc.preprocess(["the fox", "dog"])[:, :1]).all()


def test_sequence_lengths_count_the_positions_tokenize_fills(preproc):
    lengths = preproc.sequence_lengths(VARIED + ["fox " * 100])
    ids = preproc.preprocess(VARIED + ["fox " * 100])
    np.testing.assert_array_equal(lengths, (ids != 0).sum(axis=1))
    assert lengths[-1] == 24 and preproc.sequence_lengths([]).shape == (0,)
