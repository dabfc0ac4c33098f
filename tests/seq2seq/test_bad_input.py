"""Bad input to the loaders and the translator: clear errors naming the argument."""

import numpy as np
import pytest

from ktlite import seq2seq
from ktlite.seq2seq import decoding
from ktlite.seq2seq.decoding import DecodingOptions
from ktlite.seq2seq.predictor import TranslationPredictor, decoding_options


@pytest.mark.parametrize(
    "sources, targets, match",
    [
        ([], [], "x_train"),
        (["a b", "c d"], ["b a"], "same length"),
        (["a b", None], ["b a", "d c"], r"x_train\[1\]"),
    ],
)
def test_loader_rejects_bad_pairs(sources, targets, match):
    with pytest.raises(ValueError, match=match):
        seq2seq.pairs_from_array(sources, targets, verbose=0)


def test_loader_calls_a_sentence_of_another_type_a_type_error():
    with pytest.raises(TypeError, match=r"y_train\[1\]=3"):
        seq2seq.pairs_from_array(["a b", "c d"], ["b a", 3], verbose=0)
    with pytest.raises(TypeError, match="single string"):
        seq2seq.pairs_from_array("a b", "b a", verbose=0)


def test_frame_and_csv_loaders_name_the_frame_the_column_or_the_file(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"source": ["a b", None], "target": ["b a", "d c"]})
    with pytest.raises(ValueError, match=r"train_df\['source'\]\[1\]"):
        seq2seq.pairs_from_df(df, verbose=0)
    good = pd.DataFrame({"source": ["a b"] * 4, "target": ["b a"] * 4})
    with pytest.raises(TypeError, match=r"val_df\['target'\]\[0\]"):
        seq2seq.pairs_from_df(good, val_df=pd.DataFrame({"source": ["x"], "target": [3]}),
                              verbose=0)
    with pytest.raises(TypeError, match="`train_filepath` must be a file path"):
        seq2seq.pairs_from_csv(None)
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_bytes("\ufeffsource,target\na b,b a\nc d,d c\ne f,f e\n".encode())  # Excel
    val.write_text("source,target\n")
    with pytest.raises(ValueError, match=r"`val_filepath` has a header but no pairs.*val.csv"):
        seq2seq.pairs_from_csv(train, val_filepath=val, verbose=0)
    val.write_text("source,target\nb a,a b\n")
    trn, held_out, _ = seq2seq.pairs_from_csv(train, val_filepath=val, verbose=0)
    assert (len(trn), len(held_out)) == (3, 1)


def test_a_column_that_is_no_str_is_a_type_error_and_a_non_frame_too(tmp_path):
    pd = pytest.importorskip("pandas")
    good = pd.DataFrame({"source": ["a b"] * 4, "target": ["b a"] * 4})
    csv_file = tmp_path / "train.csv"
    csv_file.write_text("source,target\na b,b a\nc d,d c\ne f,f e\n")
    for name in ("source_column", "target_column"):
        match = rf"`{name}` must be a column name \(a str\). Received: {name}=1"
        with pytest.raises(TypeError, match=match):
            seq2seq.pairs_from_df(good, **{name: 1}, verbose=0)
        with pytest.raises(TypeError, match=match):
            seq2seq.pairs_from_csv(csv_file, **{name: 1}, verbose=0)
    with pytest.raises(TypeError, match="`train_df` must be a pandas DataFrame. Received: "
                                        "train_df of type dict"):
        seq2seq.pairs_from_df({"source": ["a b"], "target": ["b a"]}, verbose=0)


def test_lm_loader_names_val_texts():
    from ktlite import generation

    with pytest.raises(ValueError, match=r"val_texts\[1\]=None"):
        generation.texts_for_lm(["a b c"] * 4, val_texts=["a", None], verbose=0)


def test_loader_needs_x_test_and_y_test_together():
    with pytest.raises(ValueError, match="x_test"):
        seq2seq.pairs_from_array(["a b"] * 4, ["b a"] * 4, x_test=["a"], verbose=0)


@pytest.fixture(scope="module")
def predictor(translator):
    return TranslationPredictor(*translator)


@pytest.mark.parametrize(
    "inputs, error, match",
    [
        (None, TypeError, "inputs"),
        (["copy a", None], ValueError, r"missing value.. Received: inputs\[1\]"),
        (["copy a", 7], TypeError, r"inputs\[1\]"),
        ([], ValueError, "must not be empty"),
        ({"copy a", "copy b"}, TypeError, "a set has no order"),
        (["copy a", "copy \udcff"], ValueError, r"item 1 holds a lone surrogate"),
    ],
)
def test_predict_rejects_bad_inputs(predictor, inputs, error, match):
    with pytest.raises(error, match=match):
        predictor.predict(inputs)


def test_a_frame_is_read_by_its_rows_not_its_column_names(predictor):
    pd = pytest.importorskip("pandas")
    sentences = ["copy a", "copy b", "copy a b"]
    column = pd.DataFrame({"en": sentences})
    assert predictor.predict(column) == predictor.predict(sentences)  # not ["en"]'s
    with pytest.raises(ValueError, match=r"must be 1-D .* Received: inputs with shape \(3, 2\)"):
        predictor.predict(column.assign(it=sentences))


def test_a_zero_dimensional_array_is_one_sentence(predictor):
    import numpy as np

    assert predictor.predict(np.array("copy b")) == predictor.predict("copy b")


def test_empty_strings_translate_to_empty_strings(predictor):
    assert predictor.predict("") == ""
    assert predictor.predict(["", "copy b"]) == ["", "b"]
    # Whitespace beyond ASCII has no word pieces either: no made-up translation.
    assert predictor.predict(["\xa0", "\u3000", "\u200b", " \t"]) == ["", "", "", ""]


def test_a_huge_max_length_means_as_long_as_the_model_allows(predictor):
    longest = predictor.predict("copy b")
    assert predictor.predict("copy b", max_length=2**31 - 1) == longest
    assert predictor.predict("copy b", max_length=2**40) == longest


@pytest.mark.parametrize(
    "options, match",
    [
        ({"beam_width": 0}, "beam_width"),
        ({"beam_width": 65}, r"`beam_width` must be an int in \[1, 64\]. Received: beam_width=65$"),
        ({"max_length": 0}, "max_length"),
        ({"top_p": 0.0, "method": "sample"}, "top_p"),
        ({"top_p": 1.5, "method": "sample"}, "top_p"),
        ({"temperature": 0.0, "method": "sample"}, "temperature"),
        ({"temperature": float("inf"), "method": "sample"}, "temperature"),
        ({"temperature": 1e-40, "method": "sample"}, r"temperature.*Received: temperature=1e-40"),
        ({"temperature": 1e39, "method": "sample"}, "temperature"),
        ({"seed": 2**31, "method": "sample"}, "seed"),
        ({"method": "nucleus"}, "method"),
        ({"method": "sample", "beam_width": 4}, "needs method='beam'"),
        ({"method": "greedy", "temperature": 2.0},
         r"apply to method='sample' only. Received: temperature=2.0 with method='greedy'"),
        ({"beam_width": 2, "top_p": 0.5},
         r"Received: top_p=0.5 with method='beam', beam_width=2"),
    ],
)
def test_decoding_options_out_of_range_raise(predictor, options, match):
    with pytest.raises(ValueError, match=match):
        predictor.predict("copy a", **options)


@pytest.mark.parametrize(
    "options, received",
    [
        ({"length_penalty": 5.0}, "length_penalty=5.0 with method='greedy', beam_width=1"),
        ({"length_penalty": 0.0}, "length_penalty=0.0 with method='greedy', beam_width=1"),
        ({"length_penalty": 5.0, "top_p": 0.9},
         "length_penalty=5.0 with method='sample', beam_width=1"),
        ({"length_penalty": 5.0, "method": "beam"},
         "length_penalty=5.0 with method='beam', beam_width=1"),
    ],
)
def test_a_length_penalty_that_no_beams_would_rank_is_refused_not_ignored(
    predictor, options, received
):
    with pytest.raises(ValueError, match=r"`length_penalty` ranks the finished beams of beam "
                                         r"search: it applies to method='beam' with beam_width "
                                         r"> 1 only. Set `beam_width` > 1, or leave "
                                         r"`length_penalty` at its default \(0.6\). "
                                         rf"Received: {received}$"):
        predictor.predict("copy a", **options)
    # Where beams are ranked, it is taken; its default is taken by every method.
    assert isinstance(predictor.predict("copy a", beam_width=2, length_penalty=5.0), str)
    assert predictor.predict("copy a", method="sample", top_k=1, length_penalty=0.6) == "a"


@pytest.mark.parametrize("options", [{"method": 1}, {"method": ["beam"], "beam_width": 2},
                                     {"method": True, "temperature": 2.0}])
def test_a_method_of_the_wrong_type_is_a_type_error_whatever_the_other_options(
    predictor, options
):
    with pytest.raises(TypeError, match="`method` must be one of .*Received: method="):
        predictor.predict("copy a", **options)


def test_options_are_checked_without_a_model():
    with pytest.raises(ValueError, match="top_p"):
        DecodingOptions(top_p=-0.1)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"beam_width": "4"}, TypeError,
         r"`beam_width` must be an int in \[1, 64\]. Received: beam_width='4'"),
        ({"method": "beam", "beam_width": 65}, ValueError,
         r"`beam_width` must be an int in \[1, 64\]. Received: beam_width=65$"),
        ({"top_k": True}, TypeError, "`top_k` must be an int >= 0. Received: top_k=True"),
        ({"seed": 1.0}, TypeError, "Received: seed=1.0"),
        ({"seed": -1}, ValueError,
         r"`seed` must be an int in \[0, 2147483647\]. Received: seed=-1"),
        ({"length_penalty": "0.6"}, TypeError, "Received: length_penalty='0.6'"),
        ({"length_penalty": float("inf")}, ValueError, "Received: length_penalty=inf"),
        ({"length_penalty": -1.0}, ValueError, "`length_penalty` must be a float >= 0"),
        ({"temperature": None}, TypeError, "`temperature` must be a float in"),
        ({"top_p": False}, TypeError,
         r"`top_p` must be a float in \(0, 1\]. Received: top_p=False"),
        ({"top_p": float("nan")}, ValueError, "Received: top_p=nan"),
        ({"method": None}, TypeError,
         r"`method` must be one of \['greedy', 'beam', 'sample'\]. Received: method=None"),
        ({"method": 1}, TypeError, "Received: method=1"),
        ({"method": "Beam"}, ValueError, "Received: method='Beam'"),
    ],
)
def test_options_of_a_wrong_type_raise_type_error_and_out_of_range_value_error(
    options, error, match
):
    with pytest.raises(error, match=match):
        DecodingOptions(**options)


@pytest.mark.parametrize("options, method", [({"seed": 5}, "greedy"),
                                             ({"seed": 7, "beam_width": 3}, "beam")])
def test_a_seed_that_greedy_or_beam_search_would_ignore_is_refused(options, method):
    # It was ignored, and each value compiled a decoding graph of its own.
    with pytest.raises(ValueError, match=r"`seed` draws the samples of method='sample' only.*"
                                         f"Received: seed={options['seed']} with "
                                         f"method='{method}'"):
        decoding_options(**options)
    assert decoding_options(seed=5, top_k=2).seed == 5


def test_the_widest_beam_is_max_beam_width():
    assert decoding.MAX_BEAM_WIDTH == 64
    assert DecodingOptions(method="beam", beam_width=np.int64(64)).beam_width == 64


def test_a_translator_refuses_a_serving_beam_wider_than_max_beam_width(translator):
    with pytest.raises(ValueError, match=r"`beam_width` must be an int in \[1, 64\]. "
                                         r"Received: beam_width=65$"):
        TranslationPredictor(*translator, beam_width=65)


def test_options_turn_numpy_scalars_into_python_numbers():
    options = DecodingOptions(beam_width=np.int64(2), top_p=np.float32(0.5), seed=np.int32(3))
    assert type(options.beam_width) is int and type(options.seed) is int
    assert type(options.top_p) is float and options.top_p == 0.5


def test_a_dataset_needs_the_preprocessor_of_its_task():
    from ktlite import generation

    with pytest.raises(TypeError, match="`preproc` must be of type PairPreprocessor. "
                                        "Received: preproc of type NoneType"):
        seq2seq.pair_dataset(["a b"], ["b a"], None)
    with pytest.raises(TypeError, match="`preproc` must be of type LMPreprocessor. "
                                        "Received: preproc of type PairPreprocessor"):
        generation.lm_dataset(["a b"], seq2seq.PairPreprocessor())


def test_model_and_preprocessor_arguments_are_named_as_the_caller_named_them(translator):
    from ktlite import generation

    with pytest.raises(ValueError, match=r"`maxlen` must be an int in \[2, 65536\] or None. "
                                         r"Received: maxlen=1"):
        generation.texts_for_lm(["the cat sat"] * 20, maxlen=1, verbose=0)
    with pytest.raises(TypeError, match=r"`source_maxlen` must be an int in \[2, 65536\] or "
                                        "None. Received: source_maxlen=2.5"):
        seq2seq.PairPreprocessor(source_maxlen=2.5)
    with pytest.raises(ValueError, match=r"Received: target_maxlen=2147483648"):
        seq2seq.PairPreprocessor(target_maxlen=2**31)  # the graph's int32 widths overflow
    model, preproc = translator
    with pytest.raises(ValueError, match=r"`dropout` must be a float in \[0, 1\). Received: "
                                         r"dropout=1.5"):
        seq2seq.translation_model("transformer", preproc=preproc, embed_dim=16, num_heads=2,
                                  dropout=1.5, verbose=0)
    with pytest.raises(TypeError, match="`verbose` must be 0 or 1. Received: verbose='x'"):
        seq2seq.translation_model("transformer", preproc=preproc, embed_dim=16, num_heads=2,
                                  verbose="x")
