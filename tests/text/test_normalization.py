"""Tests for ktlite.text.normalization: tensorflow-text normalization and joining words."""

from ktlite.text.normalization import _join_words, _normalizer_function, normalize_texts


def test_lowercase_normalization_folds_case_accents_and_full_width_letters():
    assert normalize_texts(["Café ＡＢＣ"]) == ["cafe abc"]


def test_cased_normalization_composes_accents_and_keeps_case():
    assert normalize_texts(["Cafe\u0301"], lowercase=False) == ["Caf\u00e9"]


def test_cjk_ideographs_get_spaces_on_both_sides():
    (out,) = normalize_texts(["机器ab"])
    assert out.split() == ["机", "器", "ab"]


def test_normalize_texts_traces_its_function_once_per_process():
    normalize_texts(["first call"], lowercase=False)
    normalize_texts(["a second call", "with another batch size"], lowercase=False)
    assert _normalizer_function(False).experimental_get_tracing_count() == 1


def test_join_words_glues_cjk_and_punctuation_and_spaces_the_rest():
    assert _join_words(["机", "器", "(", "a", ")", "b", "!"]) == "机器 (a) b!"
