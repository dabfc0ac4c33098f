"""Tests for ktlite.labels: detection, encoding, decoding and label errors."""

import json
import re
import warnings

import numpy as np
import pytest

from ktlite.labels import (
    LabeledPreprocessor,
    LabelEncoder,
    class_position,
    decode_predictions,
    encode_labels,
    fit_labels,
    infer_label_mode,
    preview_values,
)


@pytest.mark.parametrize(
    "y, mode",
    [
        (["pos", "neg", "pos"], "multiclass"),
        (np.array(["b", "a"]), "multiclass"),
        ([0, 2, 1], "multiclass"),
        (np.array([True, False]), "multiclass"),
        ([[1, 0, 0], [0, 0, 1]], "multiclass"),
        ([["a", "b"], ["b"], []], "multilabel"),
        (np.array([[1, 1, 0], [0, 0, 1]]), "multilabel"),
        ([0.5, 1.25, 3.0], "regression"),
        (np.array([[0.5, 1.5], [2.0, 0.25]]), "regression"),
    ],
)
def test_infer_label_mode_detects_each_kind(y, mode):
    assert infer_label_mode(y) == mode


def test_integers_that_look_like_a_numeric_target_warn_and_stay_classes():
    prices = list(range(100, 300))
    with pytest.warns(UserWarning, match=r"`y` holds 200 distinct integers in 200 labels.*"
                                         r"label_mode='regression'"):
        assert infer_label_mode(prices) == "multiclass"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert infer_label_mode([0, 1, 2] * 10) == "multiclass"  # 3 classes: quiet
        assert infer_label_mode(list(range(20))) == "multiclass"  # 20 distinct: quiet


def test_pandas_missing_labels_are_missing_values():
    import pandas as pd

    for missing in (None, float("nan"), np.float32("nan"), pd.NA):
        with pytest.raises(ValueError, match=r"`y` holds a missing label .* at index 1"):
            infer_label_mode(np.array(["a", missing, "b"], dtype=object))


def test_string_class_names_are_sorted_and_encoded_as_int32():
    mode, names, k = fit_labels(["pos", "neg", "neutral", "pos"])
    assert (mode, names, k) == ("multiclass", ["neg", "neutral", "pos"], 3)
    ids = encode_labels(["pos", "neg"], mode, names)
    assert ids.dtype == np.int32 and ids.tolist() == [2, 0]


def test_integer_class_names_are_sorted_numerically():
    _, names, _ = fit_labels([10, 2, 1, 2])
    assert names == ["1", "2", "10"]
    assert encode_labels([10, 1], "multiclass", names).tolist() == [2, 0]


def test_integers_index_user_class_names_when_they_are_not_names():
    mode, names, _ = fit_labels([0, 1, 1], class_names=["neg", "pos"])
    assert names == ["neg", "pos"]
    assert encode_labels([1, 0], mode, names).tolist() == [1, 0]


def test_integers_never_index_classes_named_by_numbers():
    # Star ratings 1..5: a stray 0 is an unknown label, not a reason to shift 1 to "2".
    mode, names, _ = fit_labels([1, 2, 3, 4, 5])
    assert encode_labels([1, 5], mode, names).tolist() == [0, 4]
    with pytest.raises(ValueError, match=r"`y_test` holds labels that are not among the "
                                         r"classes: \['0'\]"):
        encode_labels([0, 1, 2, 3, 4], mode, names, name="y_test")
    with pytest.raises(ValueError, match="not among the classes"):
        encode_labels([1], *fit_labels([0, 5])[:2])


def test_user_class_names_set_the_output_order():
    _, names, _ = fit_labels(["a", "b"], class_names=["b", "a"])
    assert encode_labels(["a", "b"], "multiclass", names).tolist() == [1, 0]


def test_one_hot_rows_become_class_ids():
    y = [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    mode, names, k = fit_labels(y)
    assert (mode, names, k) == ("multiclass", ["0", "1", "2"], 3)
    assert encode_labels(y, mode, names).tolist() == [1, 0, 2]


def test_multilabel_lists_become_a_float_matrix():
    y = [["sport", "news"], [], ["weather"]]
    mode, names, k = fit_labels(y)
    assert (mode, names, k) == ("multilabel", ["news", "sport", "weather"], 3)
    m = encode_labels(y, mode, names)
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 0, 0], [0, 0, 1]])


def test_multilabel_override_reads_a_one_label_per_row_matrix_as_multilabel():
    y = [[1, 0], [0, 1]]
    mode, names, _ = fit_labels(y, label_mode="multilabel", class_names=["x", "y"])
    assert mode == "multilabel"
    np.testing.assert_array_equal(encode_labels(y, mode, names), y)


def test_regression_targets_are_float32():
    mode, names, k = fit_labels([0.5, 1.5, 2.25])
    assert (mode, names, k) == ("regression", None, 1)
    out = encode_labels([0.5, 3], mode, None, 1)
    assert out.dtype == np.float32 and out.tolist() == [0.5, 3.0]


def test_integers_can_be_forced_to_regression():
    mode, _, _ = fit_labels([1, 2, 3, 4], label_mode="regression")
    assert mode == "regression"


def test_whole_number_floats_are_ambiguous_and_the_error_names_the_fix():
    with pytest.raises(ValueError, match="label_mode='multiclass'.*label_mode='regression'"):
        fit_labels([1.0, 2.0, 5.0])
    assert fit_labels([1.0, 2.0, 5.0], label_mode="multiclass")[1] == ["1", "2", "5"]
    assert fit_labels([1.0, 2.0, 5.0], label_mode="regression")[0] == "regression"


def test_integer_matrix_that_is_not_binary_is_ambiguous():
    with pytest.raises(ValueError, match="label_mode='multilabel'"):
        fit_labels(np.array([[1, 2], [3, 0]]))
    mode, names, _ = fit_labels(np.array([[1, 2], [3, 0]]), label_mode="multilabel")
    assert mode == "multilabel" and names == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "y, match",
    [
        (["a", None, "b"], "index 1"),
        ([1.0, float("nan"), 2.5], "index 1"),
        (np.array([0.5, np.inf]), "index 1"),
        (["a", 1], "mixes label types"),
        (["a", "a", "a"], "single class"),
        ([[1, 0], [1, 0]], "single class"),
        ([["a"], ["a"]], "single label"),
        ([], "must not be empty"),
    ],
)
def test_bad_training_labels_raise_clear_errors(y, match):
    with pytest.raises(ValueError, match=match):
        fit_labels(y)


@pytest.mark.parametrize(
    "y, match",
    [
        ("abc", "single string"),
        (b"ab", "single string"),
        (None, "None"),
        ({0: "pos", 1: "neg"}, "a dict has no order .*Received: y_train of type dict"),
        ({"pos", "neg"}, "a set has no order"),
        (np.int64(3), r"a sequence of labels. Received: y_train=np.int64\(3\)"),
        (np.array(3), r"a sequence of labels. Received: y_train=array\(3\)"),
        (7, "a sequence of labels. Received: y_train=7"),
    ],
)
def test_labels_that_are_not_a_sequence_are_type_errors_like_texts(y, match):
    # The same mistakes made with texts (`text_inputs.validate_texts`) are TypeErrors too.
    with pytest.raises(TypeError, match=match):
        fit_labels(y, name="y_train")
    with pytest.raises(TypeError, match=match):
        encode_labels(y, "multiclass", ["neg", "pos"], name="y_train")


def test_labels_unseen_in_training_raise_and_are_listed():
    mode, names, _ = fit_labels(["a", "b"])
    with pytest.raises(ValueError, match="not among the classes.*'c'"):
        encode_labels(["a", "c"], mode, names, name="y_test")
    mode, names, _ = fit_labels([["a"], ["b"]])
    with pytest.raises(ValueError, match="not among the classes.*'z'"):
        encode_labels([["a", "z"]], mode, names)


def test_invalid_label_mode_and_class_names_are_refused():
    with pytest.raises(ValueError, match="label_mode"):
        fit_labels(["a", "b"], label_mode="binary")
    with pytest.raises(ValueError, match="duplicates"):
        fit_labels(["a", "b"], class_names=["a", "a"])
    with pytest.raises(TypeError, match=r"list of strings. Received: class_names='ab'"):
        fit_labels(["a", "b"], class_names="ab")
    with pytest.raises(TypeError, match=r"must hold strings. Received: class_names\[1\]=2"):
        fit_labels(["a", "b"], class_names=["a", 2])
    with pytest.raises(ValueError, match=r"non-empty strings. Received: class_names\[0\]=''"):
        fit_labels(["a", "b"], class_names=["", "b"])
    with pytest.raises(ValueError, match="class_names"):
        fit_labels([[1, 0], [0, 1]], class_names=["a", "b", "c"])


def test_decode_predictions_per_mode():
    assert decode_predictions([[0.2, 0.8], [0.9, 0.1]], "multiclass", ["n", "p"]) == ["p", "n"]
    pairs = decode_predictions([[0.25, 0.75]], "multilabel", ["a", "b"])
    assert pairs == [[("a", 0.25), ("b", 0.75)]]
    assert decode_predictions([[1.5], [2.0]], "regression", None) == [1.5, 2.0]
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        decode_predictions([[0.1, 0.2, 0.7]], "multiclass", ["n", "p"])


def test_regression_constant_target_warns():
    with pytest.warns(UserWarning, match="single value"):
        fit_labels([0.5, 0.5, 0.5])


# ---------------------------------------------------------------- LabelEncoder
def test_label_encoder_fits_encodes_decodes_and_round_trips_its_config():
    labels = LabelEncoder().fit(["pos", "neg", "pos"])
    assert (labels.label_mode, labels.class_names, labels.num_outputs) == (
        "multiclass", ["neg", "pos"], 2)
    assert labels.encode(["pos", "neg"]).tolist() == [1, 0]
    assert labels.decode([[0.2, 0.8], [0.9, 0.1]]) == ["pos", "neg"]
    clone = LabelEncoder.from_config(labels.get_config())
    assert clone.decode([[0.2, 0.8]]) == ["pos"] and clone.get_config() == labels.get_config()


def test_label_encoder_decodes_multilabel_as_every_class_with_its_probability():
    labels = LabelEncoder().fit([["a"], ["a", "b"], []])
    assert labels.decode([[0.9, 0.2]]) == [[("a", 0.9), ("b", 0.2)]]


def test_label_encoder_refuses_use_before_fit_and_bad_arguments():
    with pytest.raises(ValueError, match="not fitted yet"):
        LabelEncoder().decode([[0.1, 0.9]])
    with pytest.raises(ValueError, match="num_outputs"):
        LabelEncoder("multiclass", ["a", "b"], num_outputs=3)
    with pytest.raises(ValueError, match="`num_outputs` must be a positive int or None. "
                                         "Received: num_outputs=0"):
        LabelEncoder("regression", num_outputs=0)
    with pytest.raises(ValueError, match="label_mode"):
        LabelEncoder("ranking")
    with pytest.raises(TypeError, match="`config` must be a dict"):
        LabelEncoder.from_config(["multiclass"])


def test_class_names_for_a_regression_are_refused_and_a_saved_regression_loads():
    with pytest.raises(ValueError, match=r"^`class_names` must be None for "
                                         r"label_mode='regression': a regression has no "
                                         r"classes. Received: class_names=\['old', 'young'\]$"):
        LabelEncoder("regression", ["old", "young"], 2)
    saved = LabelEncoder().fit([[0.5, 1.5], [2.0, 0.25]]).get_config()
    assert saved == {"label_mode": "regression", "class_names": None, "num_outputs": 2}
    assert LabelEncoder.from_config(saved).decode([[1.5, 2.0]]) == [[1.5, 2.0]]


@pytest.mark.parametrize("mode", [1, True, ["multiclass"]])
def test_a_label_mode_of_the_wrong_type_is_a_type_error(mode):
    message = (r"`label_mode` must be one of \['multiclass', 'multilabel', 'regression'\] or "
               rf"None. Received: label_mode={re.escape(repr(mode))}")
    for call in (lambda: fit_labels(["a", "b"], label_mode=mode),
                 lambda: encode_labels(["a"], mode, ["a", "b"]),
                 lambda: decode_predictions([[0.2, 0.8]], mode, ["a", "b"]),
                 lambda: LabelEncoder(mode)):
        with pytest.raises(TypeError, match=message):
            call()


def test_a_saved_label_mode_of_the_wrong_type_still_loads_as_an_invalid_file(tmp_path):
    from ktlite.saving import InvalidFileError
    from ktlite.vision.preprocessor import ImagePreprocessor

    preproc = ImagePreprocessor(image_size=(4, 4), channels=1)
    preproc.labels.fit(["a", "b"])
    preproc.save(tmp_path)
    path = tmp_path / "preprocessor.json"
    config = json.loads(path.read_text())
    config["labels"]["label_mode"] = 12345
    path.write_text(json.dumps(config))
    with pytest.raises(InvalidFileError, match="`label_mode` must be one of") as info:
        ImagePreprocessor.load(tmp_path)
    assert "12345" not in str(info.value)


def test_a_labeled_preprocessor_answers_from_its_encoder_as_it_is_fitted():
    class Preprocessor(LabeledPreprocessor):
        def __init__(self):
            self.labels = LabelEncoder()

    preproc = Preprocessor()
    assert (preproc.label_mode, preproc.class_names, preproc.num_outputs) == (None, None, None)
    preproc.labels.fit(["pos", "neg", "pos"])
    assert (preproc.label_mode, preproc.class_names, preproc.num_outputs) == (
        "multiclass", ["neg", "pos"], 2
    )


def test_labels_of_new_examples_are_encoded_counted_and_refused_when_unknown():
    class Preprocessor(LabeledPreprocessor):
        def __init__(self):
            self.labels = LabelEncoder()

    preproc = Preprocessor()
    preproc.labels.fit(["pos", "neg", "pos"])
    np.testing.assert_array_equal(preproc.encode_labels_of(["pos", "neg"], 2, "text"), [1, 0])
    assert preproc.encode_labels_of(None, 2, "text") is None
    with pytest.raises(ValueError, match=r"one label per image. Received: 3 images and 2 labels"):
        preproc.encode_labels_of(["pos", "neg"], 3, "image")
    with pytest.raises(ValueError, match=r"per row. Received: 1 rows and int"):
        preproc.encode_labels_of(5, 1, "row")
    with pytest.raises(ValueError, match="maybe"):
        preproc.encode_labels_of(["maybe"], 1, "text")
    Preprocessor.check_instance(preproc)
    with pytest.raises(TypeError, match=r"`preproc` must be of type Preprocessor. "
                                        r"Received: preproc of type LabelEncoder"):
        Preprocessor.check_instance(LabelEncoder())


def test_an_infinite_regression_label_in_a_list_is_refused_like_one_in_an_array():
    for labels in ([1.5, float("inf"), 2.0], np.array([1.5, np.inf, 2.0])):
        with pytest.raises(ValueError, match="infinite label .* at index 1"):
            LabelEncoder().fit(labels)


@pytest.mark.parametrize("num_outputs", ["2", True, 2.0])
def test_label_encoder_refuses_num_outputs_of_the_wrong_type(num_outputs):
    with pytest.raises(TypeError, match="`num_outputs` must be a positive int or None. "
                                        "Received: num_outputs="):
        LabelEncoder("multiclass", ["a", "b"], num_outputs=num_outputs)


def test_label_encoder_takes_a_numpy_num_outputs_as_an_int():
    labels = LabelEncoder("multiclass", ["a", "b"], num_outputs=np.int64(2))
    assert type(labels.num_outputs) is int and labels.get_config()["num_outputs"] == 2


def test_labels_outside_class_names_are_named_with_the_classes_they_miss():
    with pytest.raises(ValueError, match=r"`y_train` holds labels that are not among the classes: "
                       r"\['False', 'True'\].*from `class_names` when given.*\['neg', 'pos'\]"):
        fit_labels([True, False, True], class_names=["neg", "pos"], name="y_train")


def test_labels_that_differ_only_by_spaces_are_warned():
    with pytest.warns(UserWarning, match=r"differ only by surrounding spaces.*"
                      r"\[\[' neg', 'neg'\]\]"):
        _, names, _ = fit_labels(["neg", " neg", "pos"], name="y_train")
    assert names == [" neg", "neg", "pos"]  # still separate classes, as given


def test_a_multilabel_int_outside_number_named_classes_is_refused_not_read_as_a_position():
    # Tags 1..3: a stray 0 was read as position 0, the class "1", silently.
    mode, names, _ = fit_labels([[1, 2], [3], [2]])
    assert (mode, names) == ("multilabel", ["1", "2", "3"])
    with pytest.raises(ValueError, match=r"not among the classes: \['0'\]"):
        encode_labels([[0], [3, 1]], mode, names, name="y_test")
    np.testing.assert_array_equal(encode_labels([[3, 1]], mode, names), [[1, 0, 1]])
    mode, names, _ = fit_labels([["a", "b"], ["c"]])
    np.testing.assert_array_equal(encode_labels([[0, 2]], mode, names), [[1, 0, 1]])


def test_preview_values_cuts_long_values_and_long_lists():
    assert preview_values(["a", "b", "c"], limit=2) == "['a', 'b', ...]"
    shown = preview_values(["x" * 1000, 7])
    assert shown == "['" + "x" * 56 + "..., 7]" and len(shown) < 70


@pytest.mark.parametrize(
    "y, match",
    [
        (["pos", "neg", ""], r"holds an empty label \(''\) at index 2.*Received: y_train\[2\]=''"),
        (np.array(["pos", "  ", "neg"]), r"holds an empty label \('  '\) at index 1"),
        ([["a", ""], ["b"]], r"holds an empty label \(''\) at index 0.*"
                             r"Received: y_train\[0\]=\['a', ''\]"),
    ],
)
def test_empty_and_blank_string_labels_are_refused_like_missing_ones(y, match):
    # They became a class named '' that trained and saved, but whose model did not load.
    with pytest.raises(ValueError, match=match):
        fit_labels(y, name="y_train")


def test_labels_that_differ_only_by_unicode_normalization_are_warned_with_their_code_points():
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    with pytest.warns(UserWarning, match=r"differ only by surrounding spaces or by Unicode "
                      r"normalization.*as code points: 'cafe\\u0301' vs 'caf\\xe9'.*"
                      r"unicodedata.normalize\('NFC', label\)"):
        _, names, _ = fit_labels([nfc, nfd, "neg"], name="y_train")
    assert names == sorted([nfc, nfd, "neg"])  # still separate classes, as given


def test_a_category_series_holds_class_names_whatever_its_values():
    pd = pytest.importorskip("pandas")
    y = pd.Series(pd.Categorical([1.5, 2.0, 1.5]), index=[7, 3, 5])
    encoder = LabelEncoder().fit(y)
    assert (encoder.label_mode, encoder.class_names) == ("multiclass", ["1.5", "2"])
    np.testing.assert_array_equal(encoder.encode(y), [0, 1, 0])
    np.testing.assert_array_equal(encoder.encode(["2", "1.5"]), [1, 0])
    with pytest.raises(ValueError, match="missing label"):
        LabelEncoder().fit(pd.Series(pd.Categorical([1.5, None, 2.0])))


def test_class_position_reads_a_name_or_an_index_and_refuses_others_naming_the_argument():
    classes = ["cat", "dog", "7"]
    assert [class_position(classes, t) for t in ("dog", 0, np.int64(2), "7")] == [1, 0, 2, 2]
    with pytest.raises(ValueError, match=r"`target` must be a class index or one of the "
                       r"classes \['cat', 'dog', '7'\]. Received: target='bird'"):
        class_position(classes, "bird")
    with pytest.raises(ValueError, match="`label`.*Received: label=3"):
        class_position(classes, 3, name="label")
    with pytest.raises(TypeError, match="`target`.*Received: target=1.0"):
        class_position(classes, 1.0)


def test_a_second_fit_learns_anew_within_what_the_encoder_was_made_with():
    # A refit held the labels to the classes (and mode) of the fit before, as if the user
    # had passed them: three classes after two were refused, classes after a regression too.
    labels = LabelEncoder().fit(["a", "b"])
    assert labels.fit(["a", "b", "c"]).class_names == ["a", "b", "c"]
    assert labels.fit([0.5, 1.5]).label_mode == "regression"
    assert labels.fit(["x", "y"]).class_names == ["x", "y"]
    asked = LabelEncoder(class_names=["a", "b"]).fit(["b", "a"])
    with pytest.raises(ValueError, match="not among the classes"):
        asked.fit(["a", "c"])
