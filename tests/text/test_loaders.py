"""Tests for ktlite.text.loaders: texts_from_array/_csv/_df/_folder and their input errors."""

import csv
import gzip
import subprocess
import sys

import numpy as np
import pytest

from ktlite.data import TaskDataset, make_dataset
from ktlite.text import (
    TextPreprocessor,
    text_dataset,
    texts_from_array,
    texts_from_csv,
    texts_from_df,
    texts_from_folder,
)

WORDS = {
    "animal": ["cat", "dog", "horse", "sparrow", "salmon", "beetle"],
    "plant": ["oak", "rose", "fern", "moss", "tulip", "maple"],
    "rock": ["granite", "basalt", "marble", "slate", "quartz", "shale"],
}


def _corpus(n_per_class=20):
    x, y = [], []
    for label, words in WORDS.items():
        for i in range(n_per_class):
            x.append(f"{words[i % 6]} and {words[(i + 1) % 6]} number {i}")
            y.append(label)
    return x, y


KW = {"vocab_size": 300, "verbose": 0}


def test_texts_from_array_returns_task_datasets_and_a_fitted_preprocessor():
    x, y = _corpus()
    trn, val, preproc = texts_from_array(x, y, **KW)
    assert isinstance(trn, TaskDataset) and isinstance(val, TaskDataset)
    assert isinstance(preproc, TextPreprocessor) and preproc.is_fitted
    assert trn.task == val.task == "text"
    assert trn.transform == preproc.tokenize
    assert trn.x.dtype == object and trn.x.ndim == 1 and isinstance(trn.x[0], str)
    assert trn.y.dtype == np.int32
    assert preproc.class_names == ["animal", "plant", "rock"]
    assert len(trn) + len(val) == len(x) and len(val) == 6


def test_held_out_split_is_stratified_and_reproducible():
    x, y = _corpus()
    _, val_a, _ = texts_from_array(x, y, val_pct=0.2, random_state=7, **KW)
    _, val_b, _ = texts_from_array(x, y, val_pct=0.2, random_state=7, **KW)
    assert list(val_a.x) == list(val_b.x)
    assert np.bincount(val_a.y).tolist() == [4, 4, 4]


def test_vocabulary_is_learned_from_training_texts_only():
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["qx" + letters[i // 26] + letters[i % 26] + "zv" for i in range(40)]
    x = [f"{w} {w} {w} {w}" for w in words]
    y = ["a", "b"] * 20
    trn, val, preproc = texts_from_array(x, y, val_pct=0.25, vocab_size=2000, verbose=0)
    vocab = set(preproc.vocab)
    assert all(t.split()[0] in vocab for t in trn.x)
    assert not any(t.split()[0] in vocab for t in val.x)


def test_x_test_is_used_as_validation_data():
    x, y = _corpus()
    trn, val, _ = texts_from_array(x, y, ["a cat", "an oak"], ["animal", "plant"], **KW)
    assert len(trn) == len(x) and list(val.x) == ["a cat", "an oak"]
    assert val.y.tolist() == [0, 1]


def test_datasets_feed_make_dataset_with_token_ids():
    x, y = _corpus()
    trn, _, preproc = texts_from_array(x, y, maxlen=16, **KW)
    ds, n = make_dataset(trn, batch_size=8)
    xb, yb = next(iter(ds))
    assert xb.shape == (8, 16) and xb.dtype.name == "int32" and n == len(trn)
    np.testing.assert_array_equal(xb.numpy(), preproc.preprocess(list(trn.x[:8])))


def test_default_maxlen_is_chosen_from_the_training_texts():
    x, y = _corpus()
    _, _, preproc = texts_from_array(x, y, **KW)
    assert preproc.maxlen == 16


def test_multilabel_and_regression_labels():
    x, _ = _corpus(4)
    multi = [["a", "b"] if i % 2 else ["b"] for i in range(len(x))]
    trn, _, preproc = texts_from_array(x, multi, **KW)
    assert preproc.label_mode == "multilabel" and trn.y.dtype == np.float32
    assert trn.y.shape[1] == 2
    target = [i / 3 for i in range(len(x))]
    trn, _, preproc = texts_from_array(x, target, **KW)
    assert preproc.label_mode == "regression" and trn.y.dtype == np.float32


@pytest.mark.parametrize(
    "x, y, match",
    [
        (["a b", None, "c d"], ["x", "y", "x"], "x_train.*item 1 is NoneType"),
        ([], [], "x_train.*must not be empty"),
        (["a b", "c d"], ["x"], "same length"),
        (["a b", "c d", "e f"], ["x", "x", "x"], "single class"),
        (["a b", "c d", "e f"], [1.5, float("nan"), 2.5], "index 1"),
        (["a b", "c d"], None, "y_train"),
    ],
)
def test_texts_from_array_input_errors(x, y, match):
    with pytest.raises(ValueError, match=match):
        texts_from_array(x, y, **KW)


def test_a_text_that_is_no_string_is_a_type_error():
    with pytest.raises(TypeError, match="x_train.*item 1 is int. Received: x_train.1.=3"):
        texts_from_array(["a b", 3, "c d"], ["x", "y", "x"], **KW)


@pytest.mark.parametrize("val_pct, error", [
    (1, ValueError), (1.5, ValueError), (-0.1, ValueError), ("0.1", TypeError), (None, TypeError),
])
def test_val_pct_must_be_a_number_in_zero_to_one(val_pct, error):
    x, y = _corpus(4)
    with pytest.raises(error, match="val_pct"):
        texts_from_array(x, y, val_pct=val_pct, **KW)


def test_val_pct_zero_trains_on_every_text_and_returns_no_validation_data(capsys):
    x, y = _corpus(4)
    trn, val, preproc = texts_from_array(x, y, val_pct=0, vocab_size=300)
    assert val is None and list(trn.x) == x
    out = capsys.readouterr().out
    assert "12 training and 0 validation texts (val_pct=0: none held out)" in out
    trn, val, _ = texts_from_array(x, y, x_test=x[:3], y_test=y[:3], val_pct=0, **KW)
    assert len(val) == 3  # validation texts given: val_pct does not apply


def test_test_labels_never_seen_in_training_raise():
    x, y = _corpus(4)
    with pytest.raises(ValueError, match="not among the classes.*'mineral'"):
        texts_from_array(x, y, ["quartz"], ["mineral"], **KW)


def test_x_test_without_y_test_raises():
    x, y = _corpus(4)
    with pytest.raises(ValueError, match="given together"):
        texts_from_array(x, y, x_test=["a cat"], **KW)


def _write_csv(path, rows, header=("id", "text", "label")):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.mark.parametrize("name", ["train.csv", "train.csv.gz"])
def test_texts_from_csv_reads_plain_and_gzipped_files(tmp_path, name):
    x, y = _corpus()
    _write_csv(tmp_path / name, [(i, t, lab) for i, (t, lab) in enumerate(zip(x, y))])
    _write_csv(tmp_path / "val.csv", [(0, 'a "quoted", cat', "animal"), (1, "oak", "plant")])
    trn, val, preproc = texts_from_csv(
        tmp_path / name, "text", "label", val_filepath=tmp_path / "val.csv", **KW
    )
    assert len(trn) == len(x) and list(val.x) == ['a "quoted", cat', "oak"]
    assert preproc.class_names == ["animal", "plant", "rock"]


def test_texts_from_csv_reads_integer_labels_as_classes(tmp_path):
    x, y = _corpus()
    ids = {"animal": 0, "plant": 1, "rock": 2}
    _write_csv(tmp_path / "t.csv", [(i, t, ids[lab]) for i, (t, lab) in enumerate(zip(x, y))])
    _, _, preproc = texts_from_csv(tmp_path / "t.csv", **KW)
    assert preproc.label_mode == "multiclass" and preproc.class_names == ["0", "1", "2"]


def test_texts_from_csv_with_several_label_columns_names_classes_after_columns(tmp_path):
    x, _ = _corpus(6)
    rows = [(t, int(i % 2 == 0), int(i % 3 == 0)) for i, t in enumerate(x)]
    _write_csv(tmp_path / "m.csv", rows, header=("text", "funny", "sad"))
    trn, _, preproc = texts_from_csv(tmp_path / "m.csv", "text", ["funny", "sad"], **KW)
    assert preproc.label_mode == "multilabel" and preproc.class_names == ["funny", "sad"]
    assert trn.y.shape[1] == 2


def test_class_names_of_several_label_columns_match_them_by_name():
    # class_names=["neg", "pos"] over columns ["pos", "neg"] renamed the columns by
    # position: every positive text trained and reported as negative, silently.
    pd = pytest.importorskip("pandas")
    x = [f"good great {i}" for i in range(10)] + [f"bad awful {i}" for i in range(10)]
    df = pd.DataFrame({"text": x, "pos": [1] * 10 + [0] * 10, "neg": [0] * 10 + [1] * 10})
    for mode in ("multiclass", "multilabel"):
        trn, _, preproc = texts_from_df(df, "text", ["pos", "neg"], class_names=["neg", "pos"],
                                        label_mode=mode, val_pct=0, **KW)
        assert preproc.class_names == ["neg", "pos"]
        first, last = np.asarray(trn.y)[[0, -1]]
        if mode == "multiclass":
            assert (preproc.class_names[first], preproc.class_names[last]) == ("pos", "neg")
        else:
            assert first.tolist() == [0, 1] and last.tolist() == [1, 0]
    # Names none of which is a column rename the columns in order; some of them is refused.
    _, _, preproc = texts_from_df(df, "text", ["pos", "neg"], class_names=["good", "bad"],
                                  val_pct=0, **KW)
    assert preproc.class_names == ["good", "bad"]
    with pytest.raises(ValueError, match=r"`class_names` must be the columns' names .*"
                                         r"Received: class_names=\['neg', 'bad'\], "
                                         r"label_columns=\['pos', 'neg'\]"):
        texts_from_df(df, "text", ["pos", "neg"], class_names=["neg", "bad"], **KW)


def test_texts_from_csv_errors_name_the_problem(tmp_path):
    _write_csv(tmp_path / "t.csv", [(0, "a cat", "animal"), (1, "oak", "")])
    with pytest.raises(ValueError, match="has columns"):
        texts_from_csv(tmp_path / "t.csv", "body", "label", **KW)
    with pytest.raises(ValueError, match="empty on data row 1"):
        texts_from_csv(tmp_path / "t.csv", **KW)
    with pytest.raises(ValueError, match="train_filepath"):
        texts_from_csv(tmp_path / "missing.csv", **KW)


def test_texts_from_df_reads_columns_and_names_missing_text_rows():
    pd = pytest.importorskip("pandas")
    x, y = _corpus()
    df = pd.DataFrame({"body": x, "topic": y})
    trn, val, preproc = texts_from_df(df, "body", "topic", val_df=df.iloc[:5], **KW)
    assert len(trn) == len(x) and len(val) == 5 and len(preproc.class_names) == 3
    # Missing cells are named by column and row label, here of a shuffled frame.
    shuffled = df.sample(frac=1, random_state=0)
    shuffled.loc[shuffled.index[0], "topic"] = None
    with pytest.raises(ValueError, match=rf"`train_df\['topic'\]` has a missing value .* in "
                                         rf"the row labelled {shuffled.index[0]}: drop or fill"):
        texts_from_df(shuffled, "body", "topic", **KW)
    df.loc[3, "body"] = None
    with pytest.raises(ValueError, match=r"`val_df\['body'\]` has a missing value .* labelled 3"):
        texts_from_df(df.iloc[5:], "body", "topic", val_df=df, **KW)
    with pytest.raises(ValueError, match="has columns"):
        texts_from_df(df, "text", "topic", **KW)


def test_column_arguments_of_the_wrong_type_are_type_errors(tmp_path):
    pd = pytest.importorskip("pandas")
    x, y = _corpus(4)
    _write_csv(tmp_path / "t.csv", [(i, t, c) for i, (t, c) in enumerate(zip(x, y))])
    with pytest.raises(TypeError, match=r"`text_column` must be a column name \(a str\). "
                                        r"Received: text_column=1"):
        texts_from_csv(tmp_path / "t.csv", text_column=1, **KW)
    with pytest.raises(TypeError, match=r"`label_columns` must be a column name or a non-empty "
                                        r"list of column names. Received: label_columns=1"):
        texts_from_csv(tmp_path / "t.csv", label_columns=1, **KW)
    df = pd.DataFrame({"text": x, "label": y})
    with pytest.raises(TypeError, match=r"`text_column` must be a column name .*text_column=0"):
        texts_from_df(df, text_column=0, **KW)
    with pytest.raises(TypeError, match=r"`label_columns` must be .*label_columns=\[1\]"):
        texts_from_df(df, label_columns=[1], **KW)
    with pytest.raises(TypeError, match="`train_df` must be a pandas DataFrame. Received: "
                                        "train_df of type dict"):
        texts_from_df({"text": x, "label": y}, **KW)
    with pytest.raises(TypeError, match="`val_df` must be a pandas DataFrame"):
        texts_from_df(df, val_df=[["a cat", "animal"]], **KW)
    with pytest.raises(ValueError, match=r"`label_columns` must be .*Received: label_columns=\[\]"):
        texts_from_df(df, label_columns=[], **KW)


def test_a_vocab_size_past_two_to_the_twenty_is_refused_before_any_training():
    x, y = _corpus(4)
    # Only just past the bound: before the check, a size as large as 10**9 reached the
    # tokenizers trainer and aborted the interpreter (it tried to reserve 70 GB).
    with pytest.raises(ValueError, match=r"`vocab_size` must be an int in \[6, 1048576\]. "
                                         r"Received: vocab_size=1048577"):
        texts_from_array(x, y, vocab_size=2**20 + 1, verbose=0)


def test_texts_from_df_accepts_a_column_of_label_lists():
    pd = pytest.importorskip("pandas")
    x, _ = _corpus(4)
    df = pd.DataFrame({"text": x, "label": [["a", "b"] if i % 2 else ["a"] for i in range(12)]})
    trn, _, preproc = texts_from_df(df, **KW)
    assert preproc.label_mode == "multilabel" and trn.y.shape == (len(trn), 2)


def _write_folder(root, split, data):
    for label, texts in data.items():
        folder = root / split / label
        folder.mkdir(parents=True)
        for i, t in enumerate(texts):
            (folder / f"{i:03d}.txt").write_text(t, encoding="utf-8")


def test_texts_from_folder_reads_class_folders_and_the_test_folder(tmp_path):
    x, y = _corpus(8)
    data = {c: [t for t, lab in zip(x, y) if lab == c] for c in WORDS}
    _write_folder(tmp_path, "train", data)
    _write_folder(tmp_path, "test", {"plant": ["an oak"], "rock": ["granite"]})
    (tmp_path / "train" / "rock" / "notes.md").write_text("ignored", encoding="utf-8")
    trn, val, preproc = texts_from_folder(tmp_path, **KW)
    assert preproc.class_names == ["animal", "plant", "rock"]
    assert len(trn) == 24 and list(val.x) == ["an oak", "granite"]
    assert val.y.tolist() == [1, 2]


def test_texts_from_folder_holds_out_val_pct_without_a_test_folder(tmp_path):
    x, y = _corpus(10)
    _write_folder(tmp_path, "train", {c: [t for t, lab in zip(x, y) if lab == c] for c in WORDS})
    trn, val, _ = texts_from_folder(tmp_path, val_pct=0.2, **KW)
    assert len(trn) == 24 and len(val) == 6


def test_texts_from_folder_with_val_pct_zero_says_it_trains_on_all(tmp_path, capsys):
    x, y = _corpus(10)
    _write_folder(tmp_path, "train", {c: [t for t, lab in zip(x, y) if lab == c] for c in WORDS})
    trn, val, _ = texts_from_folder(tmp_path, val_pct=0, vocab_size=300)
    assert len(trn) == 30 and val is None
    assert "folder: training on all the training texts." in capsys.readouterr().out


def test_texts_from_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="train_folder"):
        texts_from_folder(tmp_path, **KW)
    _write_folder(tmp_path, "train", {"only": ["a cat", "a dog"]})
    with pytest.raises(ValueError, match="at least 2 class folders"):
        texts_from_folder(tmp_path, **KW)
    _write_folder(tmp_path, "train", {"other": ["an oak", "a rose"]})
    _write_folder(tmp_path, "test", {"new": ["granite"]})
    with pytest.raises(ValueError, match=r"\(`test_folder`\) has class folders \['new'\].*"
                                         r"remove them, pass `class_names`"):
        texts_from_folder(tmp_path, **KW)


@pytest.mark.parametrize("arguments, error, message", [
    # `val_pct` went into an f-string before any check ("Unknown format code '%'"), and
    # the folders reached os.path ("join() argument must be str ... not 'NoneType'").
    ({"val_pct": "0.2"}, TypeError, r"`val_pct` must be a float in \[0, 1\). Received: "
                                    r"val_pct='0.2'"),
    ({"val_pct": 1.0}, ValueError, r"`val_pct` must be a float in \[0, 1\)"),
    ({"train_folder": None}, TypeError, r"`train_folder` must be of type str. Received: "
                                        r"train_folder of type NoneType"),
    ({"test_folder": 5}, TypeError, r"`test_folder` must be of type str"),
    ({"root": 5}, TypeError, r"`root` must be a path \(str or os.PathLike\). Received: root "
                             r"of type int"),
])
def test_texts_from_folder_refuses_bad_arguments_by_name(tmp_path, arguments, error, message):
    _write_folder(tmp_path, "train", {"a": ["a cat", "a dog"], "b": ["an oak", "a rose"]})
    with pytest.raises(error, match=message):
        texts_from_folder(**{"root": tmp_path, "test_folder": None, **arguments}, **KW)


def test_importing_ktlite_text_imports_neither_pandas_nor_tensorflow():
    code = (
        "import sys, ktlite.text; "
        "assert 'pandas' not in sys.modules, 'pandas'; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validate_after_texts_from_array_names_the_classes(capsys):
    import ktlite
    from corpora import planted_corpus
    from ktlite.text import text_classifier

    texts, labels = planted_corpus(200, 0, filler_words=3)
    names = ["negative review", "positive review"]
    labels = [names[label == "pos"] for label in labels]
    trn, val, preproc = texts_from_array(texts, labels, val_pct=0.3, maxlen=8, vocab_size=60,
                                         random_state=0, verbose=0)
    model = text_classifier("fasttext", trn, preproc=preproc, verbose=0)
    learner = ktlite.get_learner(model, trn, val, batch_size=16, verbose=0)
    learner.fit_onecycle(5e-2, 2)
    capsys.readouterr()
    matrix = learner.validate()
    report = capsys.readouterr().out
    assert "negative review" in report and "positive review" in report
    assert matrix.shape == (2, 2) and matrix.sum() == len(val)

    # Raw texts and labels are read by the loader's own path (tokenized, labels encoded).
    raw = learner.validate(val_data=(list(val.x), [names[i] for i in val.y]), print_report=False)
    np.testing.assert_array_equal(raw, matrix)
    np.testing.assert_allclose(learner.predict(list(val.x[:5])), learner.predict(val)[:5],
                               atol=1e-6)
    test = text_dataset(list(val.x), [names[i] for i in val.y], preproc)
    np.testing.assert_array_equal(test.y, val.y)
    with pytest.raises(ValueError, match=r"`val_data` is read as raw text examples.*`labels` "
                                         r"holds labels that are not among the classes"):
        learner.validate(val_data=(["good film"], ["meh"]))
    with pytest.raises(ValueError, match=r"`val_data` needs labels.*Received: 2 examples"):
        learner.validate(val_data=["good film", "bad film"])
    with pytest.raises(ValueError, match=r"`data` is read as raw text.*`texts` must be 1-D"):
        learner.predict(np.zeros((2, 8), "int32"))
    with pytest.raises(ValueError, match="one label per text. Received: 2 texts and 1 labels"):
        text_dataset(["a", "b"], ["positive review"], preproc)
    with pytest.raises(TypeError, match="`preproc` must be of type TextPreprocessor"):
        text_dataset(["a"], None, object())


def test_sets_and_lone_surrogates_are_refused_naming_the_item():
    texts = [f"good film {i}" for i in range(20)] + [f"bad film {i}" for i in range(20)]
    labels = ["pos"] * 20 + ["neg"] * 20
    with pytest.raises(TypeError, match="a set has no order"):
        texts_from_array(set(texts), labels, verbose=0)
    with pytest.raises(ValueError, match=r"item 39 holds a lone surrogate"):
        texts_from_array(texts[:39] + ["bad \ud800"], labels, verbose=0)


def test_labels_that_are_no_list_and_a_single_class_name_are_type_errors(tmp_path):
    texts = [f"good film {i}" for i in range(20)] + [f"bad film {i}" for i in range(20)]
    with pytest.raises(TypeError, match="`y_train` must be a list or array of labels"):
        texts_from_array(texts, 5, verbose=0)
    for cls in ("neg", "pos"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        (tmp_path / "train" / cls / "a.txt").write_text(f"a {cls} text")
    with pytest.raises(TypeError, match=r"not one string. .* pass \['neg', ...\]"):
        texts_from_folder(tmp_path, class_names="neg", verbose=0)


def test_texts_loaded_by_a_second_loader_call_are_refused_as_validation_data(tmp_path):
    # A second `texts_from_array` call learns its own vocabulary: its token ids stand for
    # other pieces, and a model trained on the first call's would read them wrongly.
    import ktlite
    from ktlite.text import text_classifier

    x, y = _corpus()
    trn, _, preproc = texts_from_array(x, y, val_pct=0, **KW)
    test, _, _ = texts_from_array(x[::3], y[::3], val_pct=0, **KW)
    assert test.preproc.vocab != preproc.vocab and test.preproc.class_names == preproc.class_names
    model = text_classifier("fasttext", trn, preproc=preproc, verbose=0)
    learner = ktlite.get_learner(model, trn, verbose=0)
    with pytest.raises(ValueError, match="`val_data` was encoded with another preprocessor"):
        learner.validate(val_data=test, print_report=False)
    # The same preprocessor reloaded from disk encodes alike.
    preproc.save(tmp_path / "pre")
    reloaded = TextPreprocessor.load(tmp_path / "pre")
    learner.validate(val_data=text_dataset(x[:40], y[:40], reloaded), print_report=False)


def test_texts_from_csv_refuses_a_row_split_by_an_unquoted_comma(tmp_path):
    # "hello, world,pos" gave the text "hello" a new class " world".
    x, y = _corpus(4)
    lines = [f"{t},{lab}" for t, lab in zip(x, y)] + ["hello, world,animal"]
    (tmp_path / "t.csv").write_text("text,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"Row on line 14 of .*t\.csv' has 3 fields, the header "
                                         r"has 2: \['hello', ' world', 'animal'\]"):
        texts_from_csv(tmp_path / "t.csv", **KW)


def test_texts_from_csv_names_the_file_without_rows_and_the_line_of_an_empty_label(tmp_path):
    (tmp_path / "h.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"`train_filepath` has a header but no rows. Received: "
                                         r"train_filepath='.*h\.csv'"):
        texts_from_csv(tmp_path / "h.csv", **KW)
    # A blank line and a text of two lines: the empty label is on line 6, not data row + 2.
    (tmp_path / "e.csv").write_text('text,label\na cat,animal\n\n"an oak\nand a fern",plant\n'
                                    'granite,\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty on data row 2 \(line 6\)"):
        texts_from_csv(tmp_path / "e.csv", **KW)


def test_texts_from_csv_and_df_refuse_a_label_column_named_twice(tmp_path):
    pd = pytest.importorskip("pandas")
    x, y = _corpus(4)
    df = pd.DataFrame({"text": x, "label": y, "other": y}).rename(columns={"other": "label"})
    # The DataFrame raised pandas' "truth value of a Series is ambiguous".
    with pytest.raises(ValueError, match=r"Columns \['label'\] appear more than once in "
                                         r"`train_df`"):
        texts_from_df(df, **KW)
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"Columns \['label'\] appear more than once in the "
                                         r"header of .*t\.csv'"):
        texts_from_csv(tmp_path / "t.csv", **KW)


def test_an_empty_label_is_refused_by_every_loader_as_a_missing_one():
    # A class named '' trained and saved, but its preprocessor and predictor did not load.
    pd = pytest.importorskip("pandas")
    x, y = _corpus(4)
    y[5] = ""
    with pytest.raises(ValueError, match=r"`y_train` holds an empty label \(''\) at index 5"):
        texts_from_array(x, y, **KW)
    with pytest.raises(ValueError, match=r"`y_train` holds an empty label \(''\) at index 5"):
        texts_from_df(pd.DataFrame({"text": x, "label": y}), **KW)


def test_texts_from_folder_warns_that_a_folder_without_texts_is_no_class(tmp_path):
    x, y = _corpus(8)
    _write_folder(tmp_path, "train", {c: [t for t, lab in zip(x, y) if lab == c] for c in WORDS})
    (tmp_path / "train" / "notes").mkdir()
    (tmp_path / "train" / "notes" / "readme.md").write_text("no texts", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"Sub-folders of .*train' without \.txt files are not "
                                         r"classes: \['notes'\]"):
        trn, val, preproc = texts_from_folder(tmp_path, test_folder=None, **KW)
    assert preproc.class_names == ["animal", "plant", "rock"]
    assert len(trn) + len(val) == 24


def test_texts_from_folder_warns_of_a_named_class_without_texts(tmp_path):
    # A class named in `class_names` whose folder held no texts became a silent output
    # the model could never learn.
    x, y = _corpus(8)
    _write_folder(tmp_path, "train", {c: [t for t, lab in zip(x, y) if lab == c] for c in WORDS})
    (tmp_path / "train" / "fungus").mkdir()
    with pytest.warns(UserWarning, match=r"`class_names` \['fungus'\] have no \.txt files"):
        _, _, preproc = texts_from_folder(tmp_path, test_folder=None,
                                          class_names=[*WORDS, "fungus"], **KW)
    assert "fungus" in preproc.class_names  # still a class, as asked


def test_texts_from_folder_reads_txt_files_whatever_the_case_of_the_extension(tmp_path):
    x, y = _corpus(4)
    _write_folder(tmp_path, "train", {c: [t for t, lab in zip(x, y) if lab == c] for c in WORDS})
    (tmp_path / "train" / "rock" / "EXTRA.TXT").write_text("pumice stone", encoding="utf-8")
    trn, val, _ = texts_from_folder(tmp_path, test_folder=None, val_pct=0, **KW)
    assert len(trn) == 13 and "pumice stone" in list(trn.x)
