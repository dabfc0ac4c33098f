"""Tests for ktlite.arguments: one exception type per mistake, wherever it is made."""

import numpy as np
import pytest

from ktlite.arguments import (
    check_bool,
    check_choice,
    check_fitted,
    check_float,
    check_instance,
    check_int,
    check_moms,
    check_positive_float,
    check_positive_int,
    check_rate,
    check_seed,
    check_verbose,
)


def test_values_of_the_right_type_come_back_as_plain_python_values():
    assert check_bool(np.bool_(True), "flag") is True
    assert type(check_positive_int(np.int64(3), "n")) is int
    assert check_positive_int(None, "n", allow_none=True) is None
    assert check_int(2, "maxlen", 2) == 2 and check_int(None, "maxlen", 2, allow_none=True) is None
    assert check_seed(None) is None and check_seed(np.int32(0)) == 0
    assert type(check_rate(np.float32(0.25), "dropout")) is float
    assert check_positive_float(1, "eps") == 1.0
    assert check_verbose(2, (0, 1, 2)) == 2
    assert check_int(65535, "port", 0, 65535) == 65535
    assert check_choice("max", "pooling", ("mean", "max")) == "max"
    assert check_choice(None, "flip", ("h",), allow_none=True) is None
    assert type(check_float(np.int64(1), "alpha", 0, 1)) is float
    assert check_float(0, "wait", low=0) == 0.0 and check_float(None, "w", allow_none=True) is None
    assert check_moms([np.float32(0.5), 0]) == (0.5, 0.0) and check_moms(None) is None


@pytest.mark.parametrize("check, value, message", [
    (lambda v: check_bool(v, "flag"), 1, "`flag` must be True or False. Received: flag=1"),
    (lambda v: check_bool(v, "flag"), None, "Received: flag=None"),
    (lambda v: check_positive_int(v, "n"), True, "`n` must be a positive int. Received: n=True"),
    (lambda v: check_positive_int(v, "n"), 2.0, "Received: n=2.0"),
    (lambda v: check_int(v, "maxlen", 2, allow_none=True), "8",
     "`maxlen` must be an int >= 2 or None. Received: maxlen='8'"),
    (lambda v: check_seed(v), 1.5, "`seed` must be None or an int >= 0. Received: seed=1.5"),
    (lambda v: check_rate(v, "dropout"), "0.1", "Received: dropout='0.1'"),
    (lambda v: check_positive_float(v, "eps"), False, "Received: eps=False"),
    (lambda v: check_verbose(v), True, "`verbose` must be 0 or 1. Received: verbose=True"),
    (lambda v: check_choice(v, "pooling", ("mean", "max")), None,
     r"`pooling` must be one of \['mean', 'max'\]. Received: pooling=None"),
    (lambda v: check_float(v, "alpha", 0, 1), "0.5",
     r"`alpha` must be a float in \[0, 1\]. Received: alpha='0.5'"),
    (lambda v: check_int(v, "port", 0, 65535), 80.0,
     r"`port` must be an int in \[0, 65535\]. Received: port=80.0"),
    (lambda v: check_instance(v, list, "items"), (),
     "`items` must be of type list. Received: items of type tuple"),
    (check_moms, "ab", r"`moms` must be None or a pair \(high, low\) of floats in \[0, 1\). "
                       "Received: moms of type str"),
    (check_moms, (0.9, "0.8"), r"`moms\[1\]` must be a float in \[0, 1\)"),
])
def test_a_value_of_the_wrong_type_is_a_type_error(check, value, message):
    with pytest.raises(TypeError, match=message):
        check(value)


@pytest.mark.parametrize("check, value, message", [
    (lambda v: check_positive_int(v, "n"), 0, "`n` must be a positive int. Received: n=0"),
    (lambda v: check_int(v, "maxlen", 2), 1, "`maxlen` must be an int >= 2. Received: maxlen=1"),
    (lambda v: check_seed(v), -1, "Received: seed=-1"),
    (lambda v: check_rate(v, "dropout"), 1.0, r"in \[0, 1\). Received: dropout=1.0"),
    (lambda v: check_positive_float(v, "eps"), float("inf"), "Received: eps=inf"),
    (lambda v: check_verbose(v, (0, 1, 2)), 3, "`verbose` must be 0, 1 or 2. Received: "),
    (lambda v: check_int(v, "port", 0, 65535), 65536, r"in \[0, 65535\]. Received: port=65536"),
    (lambda v: check_choice(v, "pooling", ("mean", "max")), "Mean",
     r"one of \['mean', 'max'\]. Received: pooling='Mean'"),
    (lambda v: check_float(v, "alpha", 0, 1), 1.5, r"in \[0, 1\]. Received: alpha=1.5"),
    (lambda v: check_float(v, "beta", 0, 1, include_high=False), 1, r"in \[0, 1\)."),
    (lambda v: check_float(v, "factor", 0, 1, include_low=False), 0, r"in \(0, 1\]."),
    (lambda v: check_float(v, "wait", low=0), -1, "`wait` must be a float >= 0. Received"),
    (lambda v: check_float(v, "wait", low=0), float("nan"), "Received: wait=nan"),
    (lambda v: check_float(v, "stop", low=1, include_low=False), 1, "must be a float > 1."),
    (lambda v: check_float(v, "x"), float("nan"), "`x` must be a finite float. Received: x=nan"),
    (lambda v: check_float(v, "x", high=2), 3, "`x` must be a float <= 2. Received: x=3"),
    (lambda v: check_choice(v, "flip", ("h", "v"), allow_none=True), "x",
     r"`flip` must be one of \['h', 'v'\] or None. Received: flip='x'"),
    (check_moms, (0.9,), r"a pair \(high, low\) of floats in \[0, 1\). Received: moms=\(0.9,\)"),
    (check_moms, (0.9, 1.0), r"`moms\[1\]` must be a float in \[0, 1\). Received: moms\[1\]=1.0"),
])
def test_a_value_out_of_range_is_a_value_error(check, value, message):
    with pytest.raises(ValueError, match=message):
        check(value)


def _loaders():
    from ktlite.generation import texts_for_lm
    from ktlite.seq2seq import pairs_from_array
    from ktlite.tabular import tabular_from_array
    from ktlite.text import texts_from_array

    texts = [f"text number {i}" for i in range(20)]
    labels = ["a", "b"] * 10
    return {
        "text": lambda **kw: texts_from_array(texts, labels, **kw),
        "tabular": lambda **kw: tabular_from_array(np.arange(40.0).reshape(20, 2), labels, **kw),
        "seq2seq": lambda **kw: pairs_from_array(texts, texts, **kw),
        "generation": lambda **kw: texts_for_lm(texts, **kw),
    }


@pytest.mark.parametrize("family", ["text", "tabular", "seq2seq", "generation"])
def test_every_loader_checks_its_split_seed_and_verbose_the_same_way(family):
    load = _loaders()[family]
    with pytest.raises(TypeError, match=r"None or an int >= 0. Received: random_state=1.5"):
        load(random_state=1.5, verbose=0)
    with pytest.raises(TypeError, match="Received: random_state=True"):
        load(random_state=True, verbose=0)
    with pytest.raises(ValueError, match=r"None or an int >= 0. Received: random_state=-1"):
        load(random_state=-1, verbose=0)
    with pytest.raises(TypeError, match="`verbose` must be 0 or 1. Received: verbose='x'"):
        load(verbose="x")
    with pytest.raises(ValueError, match="`verbose` must be 0 or 1. Received: verbose=7"):
        load(verbose=7)


def _mask(preproc):
    from ktlite.text.masking import TokenMasker
    return TokenMasker(preproc)


def _text_dataset(preproc):
    from ktlite.text import text_dataset
    return text_dataset(["a"], None, preproc)


def _translation_model(preproc):
    from ktlite.seq2seq import translation_model
    return translation_model("transformer", preproc=preproc)


def _causal_lm(preproc):
    from ktlite.generation import causal_lm
    return causal_lm("transformer", preproc=preproc)


def _unfitted(family):
    from ktlite.generation.data import LMPreprocessor
    from ktlite.seq2seq.preprocessor import PairPreprocessor
    from ktlite.text import TextPreprocessor
    return {"text": lambda: TextPreprocessor(maxlen=8), "pairs": PairPreprocessor,
            "lm": LMPreprocessor}[family]()


@pytest.mark.parametrize("family, call", [
    ("text", _mask), ("text", _text_dataset), ("pairs", _translation_model), ("lm", _causal_lm),
])
def test_an_unfitted_preprocessor_is_a_value_error_and_another_kind_a_type_error(family, call):
    # The same two mistakes were TypeErrors in the translation and generation tasks and in
    # `Backbone`, ValueErrors in the text loaders, `pretrain` and the table predictor.
    with pytest.raises(ValueError, match=r"`preproc` must be a fitted \w+Preprocessor \(the "
                                         r"one its loader returns\)\. Received: an unfitted"):
        call(_unfitted(family))
    with pytest.raises(TypeError, match="`preproc` must be"):
        call(object())
    with pytest.raises(TypeError, match="`preproc` must be of type Pre"):
        check_fitted(object(), type("Pre", (), {}))
