"""Tests for translation_model: structure, training through the learner, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import ktlite
from ktlite import seq2seq
from ktlite.layers import TokenAndPositionEmbedding

from seq2seq_corpora import task_pairs


@pytest.fixture(scope="module")
def pairs():
    sources, targets = task_pairs(120, seed=3)
    return seq2seq.pairs_from_array(sources, targets, val_pct=0.25, vocab_size=100,
                                    source_maxlen=8, target_maxlen=8, verbose=0)


def _small(trn, preproc, **kwargs):
    return seq2seq.translation_model("transformer", trn, preproc=preproc, embed_dim=16,
                                     num_heads=2, num_layers=1, verbose=0, **kwargs)


def test_one_embedding_is_shared_by_encoder_decoder_and_output(pairs):
    trn, _, preproc = pairs
    model = _small(trn, preproc)
    embeddings = [layer for layer in model.layers if isinstance(layer, TokenAndPositionEmbedding)]
    assert len(embeddings) == 1 and "logits" not in {layer.name for layer in model.layers}
    untied = _small(trn, preproc, tie_embeddings=False)
    assert untied.get_layer("logits").units == preproc.target_vocab_size
    assert len([layer for layer in untied.layers
                if isinstance(layer, TokenAndPositionEmbedding)]) == 2


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_trains_through_the_learner_and_lr_find(pairs, tie_embeddings):
    # An untied head passed the decoder's padding mask on to the per-sentence loss, which
    # Keras then multiplied by it: training failed at once.
    trn, val, preproc = pairs
    model = _small(trn, preproc, tie_embeddings=tie_embeddings)
    before = [w.numpy() for w in model.trainable_weights]
    learner = ktlite.get_learner(model, train_data=trn, val_data=val, batch_size=16)
    assert learner.lr_find(num_steps=20, verbose=0).suggestion > 0
    learner.fit_onecycle(1e-2, 2, verbose=0)
    losses = learner.history.history["loss"]
    assert losses[-1] < losses[0]
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    # Raw sentence pairs are read as the loader read them.
    pairs_given = (list(val.x["source"]), list(val.x["target"]))
    assert learner.top_losses(3, val_data=pairs_given) == learner.top_losses(3)
    with pytest.raises(ValueError, match=r"reads each source with its target: pass "
                                         r"`\(sources, targets\)` as one tuple.*Received: "
                                         rf"{len(val)} sources without targets"):
        learner.predict(pairs_given[0])


def test_a_learner_predicts_a_tuple_of_sources_and_targets_as_teacher_forced_pairs(pairs):
    trn, val, preproc = pairs
    learner = ktlite.get_learner(_small(trn, preproc), train_data=trn, val_data=val,
                                 batch_size=16, verbose=0)
    sources, targets = list(val.x["source"]), list(val.x["target"])
    outputs = learner.predict((sources, targets))
    assert outputs.shape == (len(sources), preproc.target_maxlen, preproc.target_vocab_size)
    expected = learner.predict(seq2seq.pair_dataset(sources, targets, preproc))
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    np.testing.assert_allclose(learner.predict((np.array(sources), tuple(targets))), expected,
                               atol=1e-6)


@pytest.mark.parametrize(
    "given, received",
    [
        (lambda s: s, r"\d+ sources without targets"),
        # Two sentences in a tuple are two sources, never (sources, targets).
        (lambda s: tuple(s[:2]), "2 sources without targets"),
        (lambda s: (s, None), r"\(sources, targets\) with targets=None"),
        # A list is examples: the pair goes in a tuple.
        (lambda s: [s, s], "a list of 2 lists, not of sentences"),
    ],
)
def test_a_learner_given_sources_alone_says_to_pass_pairs_or_use_the_predictor(
    pairs, given, received
):
    trn, val, preproc = pairs
    learner = ktlite.get_learner(_small(trn, preproc), train_data=trn, val_data=val, verbose=0)
    with pytest.raises(ValueError, match=r"pass `\(sources, targets\)` as one tuple.*"
                                         r"`ktlite\.get_predictor\(.*\)\.predict\(sources\)`.*"
                                         rf"Received: {received}"):
        learner.predict(given(list(val.x["source"])))


def test_saved_model_loads_in_safe_mode_with_the_same_outputs(pairs, tmp_path):
    trn, _, preproc = pairs
    model = _small(trn, preproc)
    inputs = preproc.transform({k: tf.constant(v[:4]) for k, v in trn.x.items()})
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), atol=1e-5)


def test_train_data_from_another_preprocessor_raises(pairs):
    trn, _, preproc = pairs
    other = seq2seq.PairPreprocessor(vocab_size=100, target_maxlen=12).fit(["a b"], ["b a"])
    with pytest.raises(ValueError, match="does not belong"):
        _small(trn, other)
    with pytest.raises(TypeError, match="preproc"):
        _small(trn, None)


@pytest.mark.parametrize("name", [None, 1, ["transformer"]])
def test_a_name_of_the_wrong_type_is_a_type_error(pairs, name):
    trn, _, preproc = pairs
    with pytest.raises(TypeError, match=r"`name` must be one of \['transformer'\]. "
                                        "Received: name="):
        seq2seq.translation_model(name, trn, preproc=preproc, verbose=0)
    with pytest.raises(ValueError, match="Received: name='rnn'"):
        seq2seq.translation_model("rnn", trn, preproc=preproc, verbose=0)


def test_length_bucketed_batches_train_to_the_same_loss_as_full_width_ones():
    sources, targets = task_pairs(64, seed=4)
    trn, val, preproc = seq2seq.pairs_from_array(sources, targets, val_pct=0.25, vocab_size=100,
                                                 source_maxlen=40, target_maxlen=40, verbose=0)
    np.testing.assert_array_equal(trn.lengths[:, 1], (trn.y != 0).sum(axis=1))
    losses, widths = {}, {}
    for bucketing in (True, False):
        keras.utils.set_random_seed(0)
        learner = ktlite.get_learner(_small(trn, preproc, dropout=0.0), train_data=trn,
                                     val_data=val, batch_size=16, bucketing=bucketing)
        dataset, _ = learner._dataset(trn, training=True)
        widths[bucketing] = {(x["source_ids"].shape[1], x["decoder_ids"].shape[1], y.shape[1])
                             for x, y in dataset}
        learner.fit_onecycle(1e-2, 1, verbose=0)
        losses[bucketing] = learner.model.evaluate(learner._dataset(val, False)[0], verbose=0)
    predictions = learner.predict(val)  # the full-width learner's
    assert widths == {True: {(16, 16, 16)}, False: {(40, 40, 40)}}
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)
    assert predictions.shape[:2] == (len(val), 40)
