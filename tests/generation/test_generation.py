"""Tests for the causal LM: training, decoding with the cache, prompts, perplexity per word."""

import math
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import ktlite
from ktlite import generation
from ktlite.layers import TokenAndPositionEmbedding, TransformerDecoder
from ktlite.seq2seq import PairPreprocessor

LETTERS = "a b c d e f".split()


def _cycles(n, seed):
    """Six letters in cyclic order from a random start: "c d e f a b"."""
    rng = np.random.default_rng(seed)
    return [" ".join(LETTERS[(s + i) % 6] for i in range(6)) for s in rng.integers(0, 6, n)]


@pytest.fixture(scope="module")
def lm():
    keras.utils.set_random_seed(0)
    trn, _, preproc = generation.texts_for_lm(_cycles(300, 0), val_texts=_cycles(6, 1),
                                              vocab_size=100, maxlen=8, verbose=0)
    model = generation.causal_lm("transformer", trn, preproc=preproc, embed_dim=32, num_heads=2,
                                 num_layers=1, ff_dim=64, dropout=0.0, learning_rate=5e-3,
                                 verbose=0)
    model.fit(preproc.inputs(tf.constant(trn.x)), trn.y, batch_size=30, epochs=15, verbose=0)
    return model, preproc


def test_greedy_continuation_follows_the_cycle_and_stops_at_the_end(lm):
    predictor = generation.GenerationPredictor(*lm)
    assert predictor.predict(["c d", "f a b c"]) == ["e f a b", "d e"]
    assert predictor.predict("c d", max_length=2) == "e f"


@pytest.mark.parametrize("options", [{}, {"beam_width": 3}, {"method": "sample", "top_k": 1}])
def test_cache_free_decoding_and_beam_one_agree_with_greedy(lm, options):
    from ktlite.seq2seq.decoding import DecodingOptions

    predictor = generation.GenerationPredictor(*lm)
    prompts = ["a", "b c d", "e f a b c"]
    greedy = predictor.predict(prompts)
    assert predictor.predict(prompts, **options) == greedy
    uncached = generation.GenerationPredictor(*lm)
    uncached._functions[DecodingOptions()] = tf.function(
        lambda p, m, r: uncached._decode_strings(p, m, DecodingOptions(use_cache=False), r))
    assert uncached.predict(prompts) == greedy


def test_different_prompts_sample_independently_one_per_call_from_the_default_seed(lm):
    _, preproc = lm
    uniform = generation.causal_lm("transformer", preproc=preproc, embed_dim=8, num_heads=1,
                                   num_layers=1, verbose=0)
    for weight in uniform.weights:
        weight.assign(tf.zeros_like(weight))
    predictor = generation.GenerationPredictor(uniform, preproc)
    # Every token is as likely: a prompt's sample is its random numbers alone, which were
    # the same for every prompt of one length (six equal strings here).
    samples = [predictor.predict(prompt, method="sample") for prompt in LETTERS]
    assert len(set(samples)) == len(LETTERS)
    assert [predictor.predict(prompt, method="sample") for prompt in LETTERS] == samples


def test_a_top_k_past_the_vocabulary_even_past_int32_samples_among_all_tokens(lm):
    predictor = generation.GenerationPredictor(*lm)
    prompts = ["a", "c d"]
    every = predictor.predict(prompts, method="sample", temperature=3.0)
    for top_k in (predictor.preproc.target_vocab_size, 2**40):
        # Past int32 it was a TensorFlow type error that named no argument.
        assert predictor.predict(prompts, top_k=top_k, temperature=3.0) == every


def test_a_prompt_longer_than_the_context_is_cut_from_the_left_with_one_warning(lm):
    predictor = generation.GenerationPredictor(*lm)
    long_prompt = "x y z " * 5 + "a b c"
    with pytest.warns(UserWarning, match="last 7 tokens"):
        first = predictor.predict(long_prompt, max_length=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert predictor.predict(long_prompt, max_length=1) == first
    # A prompt that fits exactly leaves room for one token: that is said too.
    fresh = generation.GenerationPredictor(*lm)
    with pytest.warns(UserWarning, match=r"7 tokens fills .* room for 1 new token \(max_le"):
        assert len(fresh.predict("x y z a b c x", max_length=5).split()) <= 1


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_model_built_under_a_global_mixed_policy_decodes_as_in_float32(lm, policy):
    # Its logits are float16 / bfloat16: the decoding loop mixed them with float32 ones.
    model, preproc = lm
    try:
        keras.mixed_precision.set_global_policy(policy)
        mixed = generation.causal_lm("transformer", preproc=preproc, embed_dim=32, num_heads=2,
                                     num_layers=1, ff_dim=64, dropout=0.0, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(model.get_weights())
    prompts = ["c d", "f a b c"]
    ours, theirs = generation.GenerationPredictor(mixed, preproc), generation.GenerationPredictor(
        model, preproc)
    for options in ({}, {"beam_width": 2}, {"method": "sample", "top_k": 1}):
        assert ours.predict(prompts, **options) == theirs.predict(prompts, **options)


def test_perplexity_per_word_of_a_uniform_model_and_of_the_trained_one(lm):
    model, preproc = lm
    texts = _cycles(5, 2)
    assert generation.perplexity_per_word(model, preproc, texts) < 1.5
    uniform = keras.models.clone_model(model)
    uniform.set_weights([np.zeros_like(w) for w in model.get_weights()])
    words, tokens = 6 * 5, 7 * 5  # one token per letter, plus each end token
    expected = math.exp(tokens * math.log(preproc.target_vocab_size) / words)
    measured = generation.perplexity_per_word(uniform, preproc, texts)
    assert measured == pytest.approx(expected, rel=1e-4)
    assert generation.perplexity_per_word(uniform, preproc, texts, batch_size=2) == \
        pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        generation.perplexity_per_word(model, preproc, texts, batch_size=0)


@pytest.mark.parametrize(
    "inputs, options, error, match",
    [
        (None, {}, TypeError, "inputs"),
        (["a", None], {}, ValueError, r"missing value.. Received: inputs\[1\]"),
        ("a", {"max_length": 0}, ValueError, "max_length"),
        ("a", {"beam_width": 0}, ValueError, "beam_width"),
        ("a", {"method": "sample", "top_p": 1.01}, ValueError, "top_p"),
        ("a", {"method": 1, "temperature": 2.0}, TypeError, "Received: method=1"),
        ("a", {"method": "nucleus"}, ValueError, "Received: method='nucleus'"),
        # length_penalty ranks beams only: elsewhere it is refused, not ignored.
        ("a", {"length_penalty": 5.0}, ValueError,
         r"`length_penalty` ranks the finished beams of beam search: it applies to "
         r"method='beam' with beam_width > 1 only. Set `beam_width` > 1, or leave "
         r"`length_penalty` at its default \(0.0\). Received: length_penalty=5.0 with "
         r"method='greedy', beam_width=1$"),
        ("a", {"length_penalty": 0.6}, ValueError,
         r"Received: length_penalty=0.6 with method='greedy', beam_width=1$"),
        ("a", {"length_penalty": 5.0, "top_p": 0.9}, ValueError,
         r"Received: length_penalty=5.0 with method='sample', beam_width=1$"),
        ("a", {"length_penalty": "5"}, TypeError, "Received: length_penalty='5'"),
    ],
)
def test_bad_prompts_and_options_raise(lm, inputs, options, error, match):
    with pytest.raises(error, match=match):
        generation.GenerationPredictor(*lm).predict(inputs, **options)


def _cross_attending_model(preproc, source_input):
    """The layers `causal_lm` names, but its decoder block attends to a source sequence: a
    second input (as in a translation model) or the tokens themselves."""
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    embedding = TokenAndPositionEmbedding(preproc.target_vocab_size, preproc.maxlen, 16,
                                          name="target_embedding")
    inputs, source = [ids], embedding(ids)
    if source_input:
        inputs.append(keras.Input((None,), dtype="int32", name="source_ids"))
        source = embedding(inputs[-1])
    x = TransformerDecoder(num_heads=2, intermediate_dim=32, name="decoder_0")(
        embedding(ids), source)
    x = keras.layers.LayerNormalization(name="decoder_norm")(x)
    return keras.Model(inputs, embedding(x, reverse=True))


@pytest.mark.parametrize("source_input, received", [
    (True, r"inputs \['token_ids', 'source_ids'\] and cross-attention in \['decoder_0'\]$"),
    (False, r"inputs \['token_ids'\] and cross-attention in \['decoder_0'\]$"),
])
def test_an_encoder_decoder_model_is_refused_as_not_decoder_only(lm, source_input, received):
    _, preproc = lm
    with pytest.raises(ValueError, match=r"must be a decoder-only \(causal LM\) model .* "
                                         r"Received: a model with " + received):
        generation.GenerationPredictor(_cross_attending_model(preproc, source_input), preproc)


@pytest.mark.parametrize("maxlen", [4, 16])
def test_a_preprocessor_of_another_context_length_is_refused_when_the_predictor_is_made(
        lm, maxlen):
    model, preproc = lm
    other = generation.LMPreprocessor(maxlen=maxlen, vocab_size=100).fit(_cycles(300, 0))
    assert other.target_vocab == preproc.target_vocab  # the context alone differs
    # A longer one made every `predict` fail inside the decoding graph.
    with pytest.raises(ValueError, match=f"The model has a context of 8 positions but the "
                                         f"preprocessor's maxlen is {maxlen}; they do not "
                                         "belong together"):
        generation.GenerationPredictor(model, other)


@pytest.mark.parametrize("texts, maxlen, received", [
    (["g h i j k l m n o p"] * 20, 8,
     r"length 8 \(preproc.target_maxlen=8\) and ids up to 1\d \(vocabulary of 11\)"),
    (_cycles(20, 2), 16, r"length 16 \(preproc.target_maxlen=8\)"),
])
def test_train_data_of_another_preprocessor_is_refused_before_the_model_is_built(
        lm, texts, maxlen, received):
    _, preproc = lm
    other, _, _ = generation.texts_for_lm(texts, val_pct=0.0, maxlen=maxlen, vocab_size=100,
                                          verbose=0)
    # Accepted, it failed inside Keras' fit (ids past the vocabulary) or trained on windows
    # longer than the model's context.
    with pytest.raises(ValueError, match=r"`train_data` does not belong to `preproc`: its "
                                         r"target ids have " + received):
        generation.causal_lm("transformer", other, preproc=preproc, verbose=0)
    with pytest.raises(TypeError, match=r"`train_data` must be the training TaskDataset "
                                        r"from `texts_for_lm`. Received: train_data=\["):
        generation.causal_lm("transformer", [1, 2], preproc=preproc, verbose=0)


@pytest.mark.parametrize("name", [None, 1, ["transformer"]])
def test_a_model_name_of_the_wrong_type_is_a_type_error(lm, name):
    _, preproc = lm
    with pytest.raises(TypeError, match=r"`name` must be one of \['transformer'\]. "
                                        "Received: name="):
        generation.causal_lm(name, preproc=preproc, verbose=0)


@pytest.mark.parametrize("cls, call, fit", [
    (generation.LMPreprocessor, "fit(texts)", lambda p: p.fit(["a b"])),
    (PairPreprocessor, "fit(sources, targets)", lambda p: p.fit(["a b"], ["b a"])),
])
def test_an_unfitted_preprocessor_names_its_class_and_the_fit_call_that_works(
        cls, call, fit, tmp_path):
    preproc = cls()
    # An LMPreprocessor was called a PairPreprocessor, told to `fit(sources, targets)`,
    # which it refuses.
    with pytest.raises(ValueError, match=f"^This {cls.__name__} has no vocabulary yet. Call "
                                         rf"`{re.escape(call)}` or `{cls.__name__}.load"
                                         r"\(folder\)` first.$"):
        preproc.save(tmp_path)
    fit(preproc).save(tmp_path)
    assert cls.load(tmp_path).target_vocab == preproc.target_vocab


def test_loader_rejects_empty_and_non_string_texts():
    with pytest.raises(ValueError, match="texts"):
        generation.texts_for_lm([], verbose=0)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        generation.texts_for_lm(["a b", None, "c d"], verbose=0)


def test_a_vocab_size_past_two_to_the_twenty_is_refused_before_any_training():
    from ktlite.generation.data import LMPreprocessor

    # Only just past the bound in the loader: before the check, a size as large as 10**9
    # reached the tokenizers trainer and aborted the interpreter.
    match = r"`vocab_size` must be an int in \[6, 1048576\]. Received: vocab_size="
    with pytest.raises(ValueError, match=match + "1048577"):
        generation.texts_for_lm(["a cat sat", "a dog ran"] * 5, vocab_size=2**20 + 1, verbose=0)
    with pytest.raises(ValueError, match=match + "1000000000"):
        LMPreprocessor(vocab_size=10**9)


def test_a_perplexity_past_the_float_range_reads_inf(lm, monkeypatch, capsys):
    # Text of many tokens a word (Chinese, URLs) under an untrained model: exp(loss / words)
    # overflowed math.exp, and `validate` failed before printing anything.
    from ktlite.generation import perplexity

    model, preproc = lm
    texts = _cycles(2, 1)
    monkeypatch.setattr(perplexity, "_summed_log_loss", lambda *args: (800.0 * 12, 14))
    assert generation.perplexity_per_word(model, preproc, texts) == math.inf
    val = generation.lm_dataset(texts, preproc)
    scores = ktlite.get_learner(model, val, val, verbose=0).validate()
    assert scores["perplexity_per_word"] == math.inf
    assert scores["perplexity_per_token"] == pytest.approx(math.exp(800.0 * 12 / 14))
    assert "perplexity per word" in capsys.readouterr().out


def test_validate_reports_the_perplexity_of_the_validation_texts(lm, capsys):
    model, preproc = lm
    val_texts = _cycles(6, 1)
    val = generation.texts_for_lm(_cycles(40, 2), val_texts=val_texts, vocab_size=100,
                                  maxlen=8, verbose=0)[1]
    learner = ktlite.get_learner(model, val, val, verbose=0)
    scores = learner.validate()
    assert scores["perplexity_per_word"] == pytest.approx(
        generation.perplexity_per_word(model, preproc, val_texts), rel=1e-5)
    # 6 words and an end token a text: per token, the same loss over 7/6 as many events.
    assert scores["perplexity_per_token"] == pytest.approx(
        scores["perplexity_per_word"] ** (6 / 7), rel=1e-5)
    assert scores["perplexity_per_word"] < 2.0  # the cycles are learned
    assert "perplexity per word" in capsys.readouterr().out
    # Raw texts are read as the loader read them: next-token logits per position.
    np.testing.assert_allclose(learner.predict(val_texts), learner.predict(val), atol=1e-5)
    np.testing.assert_array_equal(generation.lm_dataset(val_texts, preproc).y, val.y)
    assert learner.validate(val_data=val_texts, print_report=False) == pytest.approx(scores)
    with pytest.raises(ValueError, match="labels are its texts' next tokens"):
        learner.validate(val_data=(val_texts, val_texts))
    # Two texts in a tuple are two texts, not (x, y).
    two = learner.validate(val_data=tuple(val_texts[:2]), print_report=False)
    assert two == pytest.approx(learner.validate(val_data=val_texts[:2], print_report=False))
    assert two != pytest.approx(scores)


def test_the_perplexity_reporter_takes_a_fitted_lm_preprocessor_only():
    from ktlite.generation.data import LMPreprocessor

    with pytest.raises(TypeError, match="`preproc` must be of type LMPreprocessor. "
                                        "Received: preproc of type int"):
        generation.perplexity_reporter(1)
    with pytest.raises(ValueError, match="`preproc` must be a fitted LMPreprocessor"):
        generation.perplexity_reporter(LMPreprocessor())


def test_loader_with_val_pct_zero_trains_on_every_text():
    texts = _cycles(40, 2)
    trn, val, _ = generation.texts_for_lm(texts, val_pct=0, verbose=0)
    assert val is None and len(trn) == len(texts)


def test_get_predictor_save_load_and_export_continue_prompts_alike(lm, tmp_path):
    import ktlite

    predictor = ktlite.get_predictor(*lm)
    assert isinstance(predictor, generation.GenerationPredictor)
    predictor.save(tmp_path / "p")
    loaded = ktlite.load_predictor(tmp_path / "p")
    assert loaded.predict(["c d", "a"]) == predictor.predict(["c d", "a"])
    predictor.export(tmp_path / "exported")
    serve = tf.saved_model.load(str(tmp_path / "exported")).signatures["serving_default"]
    out = serve(texts=tf.constant(["c d"]))["continuations"].numpy()
    assert [t.decode() for t in out] == [predictor.predict("c d")]
    # An empty batch (a serving client's): an empty answer, not a negative cache size.
    assert serve(texts=tf.constant([], tf.string))["continuations"].shape == (0,)
    # Another length for the export alone; the predictor keeps its own.
    own = predictor.describe()["serving_max_length"]
    predictor.export(tmp_path / "short", max_length=2)
    serve = tf.saved_model.load(str(tmp_path / "short")).signatures["serving_default"]
    out = serve(texts=tf.constant(["c d"]))["continuations"].numpy()
    assert [t.decode() for t in out] == [predictor.predict("c d", max_length=2)]
    assert len(predictor.predict("c d").split()) > 2
    assert predictor.describe()["serving_max_length"] == own > 2


def test_an_export_option_of_another_predictor_is_refused_naming_the_ones_it_takes(lm, tmp_path):
    # It said `beam_width` applied to format='tflite' only, which refuses generation.
    with pytest.raises(ValueError, match=r"^`beam_width` is not an option of GenerationPredictor"
                                         r".export\(format='saved_model'\), which takes `path`, "
                                         r"`format`, `max_length`. .* Received: beam_width=4$"):
        generation.GenerationPredictor(*lm).export(tmp_path / "exported", beam_width=4)
    assert list(tmp_path.iterdir()) == []


def test_a_text_longer_than_the_context_is_labelled_with_its_next_token_not_an_end():
    from ktlite.seq2seq.preprocessor import END_ID

    keras.utils.set_random_seed(0)
    long_texts = [" ".join(LETTERS[(s + i) % 6] for i in range(20)) for s in range(6)] * 50
    trn, _, preproc = generation.texts_for_lm(long_texts, val_pct=0, vocab_size=100, maxlen=8,
                                              verbose=0)
    assert END_ID not in trn.y
    cut = preproc.target_ids(["a b c d e f a b c d e f"])[0]
    fits = preproc.target_ids(["a b c d e f a"])[0]  # 7 tokens and the end: the context
    assert fits[-1] == END_ID
    np.testing.assert_array_equal(cut, [*fits[:7], fits[1]])  # "a b c d e f a b"
    # A translation's cut target still ends within its width.
    pairs = PairPreprocessor(source_maxlen=4, target_maxlen=4, vocab_size=100)
    pairs.fit(["x y"] * 5, ["a b c d e f"] * 5)
    assert pairs.target_ids(["a b c d e f"])[0][-1] == END_ID
    # Trained on such texts, a model continues to the context's edge instead of ending
    # one token short of it.
    model = generation.causal_lm("transformer", trn, preproc=preproc, embed_dim=32, num_heads=2,
                                 num_layers=1, ff_dim=64, dropout=0.0, learning_rate=5e-3,
                                 verbose=0)
    model.fit(preproc.inputs(tf.constant(trn.x)), trn.y, batch_size=30, epochs=10, verbose=0)
    predictor = generation.GenerationPredictor(model, preproc)
    assert predictor.predict(["a b c", "c"], max_length=20) == ["d e f a b", "d e f a b c d"]


def test_training_batches_are_length_bucketed_with_labels_alongside():
    trn, _, preproc = generation.texts_for_lm(_cycles(40, 2), val_texts=_cycles(4, 3),
                                              vocab_size=100, maxlen=40, verbose=0)
    np.testing.assert_array_equal(trn.lengths, (trn.y != 0).sum(axis=1))
    model = generation.causal_lm("transformer", trn, preproc=preproc, embed_dim=16, num_heads=2,
                                 num_layers=1, verbose=0)
    learner = ktlite.get_learner(model, train_data=trn, batch_size=8)
    shapes = {(x.shape[1], y.shape[1]) for x, y in learner._dataset(trn, training=True)[0]}
    assert shapes == {(16, 16)}
    inputs = preproc.inputs(tf.constant(trn.x))
    before = model.evaluate(inputs, trn.y, verbose=0, return_dict=True)["loss"]
    learner.fit_onecycle(1e-2, 2, verbose=0)
    assert model.evaluate(inputs, trn.y, verbose=0, return_dict=True)["loss"] < before


def test_a_language_model_writes_spaced_dashes_and_joiners_back_as_given():
    from ktlite.generation.data import LMPreprocessor

    texts = ["libreria AV1 - strumenti per real-time", "gioco -- dati"] * 5
    preproc = LMPreprocessor(vocab_size=300).fit(texts)
    assert preproc.undo(preproc.target_ids(texts[:2])) == texts[:2]
