"""Tests for ktlite.text.backbone: what a `Backbone` accepts as its encoder."""

import json

import keras
import numpy as np
import pytest
from corpora import planted_corpus, task_dataset
from folders import rehash

from ktlite import saving
from ktlite.models import Transformer
from ktlite.text import Backbone, TextPreprocessor, load_backbone, text_classifier

SIZES = dict(embed_dim=8, num_heads=2, num_layers=1, ff_dim=16, dropout=0.0)


@pytest.fixture(scope="module")
def task():
    texts, labels = planted_corpus(40, 0, filler_words=5)
    preproc = TextPreprocessor(maxlen=8, vocab_size=60).fit(texts, labels)
    return task_dataset(texts, labels, preproc), preproc


def _classifier(preproc):
    keras.utils.set_random_seed(0)
    return Transformer(vocab_size=preproc.vocab_size, maxlen=preproc.maxlen, **SIZES)


def _encoder(classifier):
    return keras.Model(classifier.inputs, classifier.get_layer("pooling").input[0])


def test_a_classifier_is_refused_as_an_encoder_naming_the_encoder_to_pass(task):
    _, preproc = task
    with pytest.raises(ValueError, match=r"one vector per token.*get_layer\('encoder'\).*"
                                         r"Received: an encoder whose output shape is "
                                         r"\(None, 2\)"):
        Backbone(_classifier(preproc), preproc)


def test_a_backbone_folder_holding_a_classifier_is_refused_at_load(task, tmp_path):
    _, preproc = task
    classifier = _classifier(preproc)
    Backbone(_encoder(classifier), preproc).save(tmp_path / "bb")
    saving.save_keras_model(classifier, tmp_path / "bb" / "encoder.keras",
                            include_optimizer=False)
    rehash(tmp_path / "bb")
    with pytest.raises(ValueError, match="is inconsistent: `encoder` must output one vector "
                                         "per token"):
        load_backbone(tmp_path / "bb")


@pytest.mark.parametrize("version", [True, 1.0, "1", 2])
def test_a_backbone_folder_of_another_format_version_is_refused(task, tmp_path, version):
    _, preproc = task
    Backbone(_encoder(_classifier(preproc)), preproc).save(tmp_path / "bb")
    assert isinstance(load_backbone(tmp_path / "bb"), Backbone)
    manifest_file = tmp_path / "bb" / "ktlite.json"
    manifest = json.loads(manifest_file.read_text())
    assert manifest["format_version"] == 1
    manifest_file.write_text(json.dumps({**manifest, "format_version": version}))
    with pytest.raises(ValueError, match=r"ktlite\.json has an unknown format_version; this "
                                         r"ktlite reads version 1\.$"):
        load_backbone(tmp_path / "bb")


def test_a_classifier_built_on_a_backbone_takes_only_the_encoder_layers(task):
    trn, preproc = task
    classifier = _classifier(preproc)
    sequence = _encoder(classifier).output
    # A per-token layer named like the classifier's head, on top of the encoder.
    extra = keras.layers.Dense(SIZES["embed_dim"], name="head")(sequence)
    backbone = Backbone(keras.Model(classifier.inputs, extra), preproc)
    model = text_classifier("transformer", trn, preproc=preproc, backbone=backbone,
                            **{k: SIZES[k] for k in ("embed_dim", "num_heads", "num_layers",
                                                     "ff_dim")}, verbose=0)
    for name in ("embedding", "encoder_0"):
        for ours, theirs in zip(model.get_layer(name).get_weights(),
                                classifier.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    assert model.get_layer("head").get_weights()[0].shape == (SIZES["embed_dim"], 2)
    assert [layer.name for layer in backbone.weight_layers()] == [
        "embedding", "embedding_norm", "encoder_0"]


@pytest.mark.parametrize("info, error, message", [
    ({"mask_rate": 0.15, "note": "x"}, ValueError,
     r"`info` may hold only the keys \['mask_rate', 'whole_word'\]. Received: other keys "
     r"'note'"),
    ({"mask_rate": 1.5}, ValueError,
     r"`info\['mask_rate'\]` must be a float in \(0, 1\). Received: info\['mask_rate'\]=1.5"),
    ({"whole_word": 1}, TypeError, r"`info\['whole_word'\]` must be True or False"),
    (["x"], TypeError, r"`info` must be a dict.*Received: info=\['x'\]"),
])
def test_a_backbone_refuses_info_that_load_backbone_would_refuse(task, info, error, message):
    # It took any `info`: `save` then wrote a folder `load_backbone` refused, or failed in
    # the middle of writing it.
    _, preproc = task
    with pytest.raises(error, match=message):
        Backbone(_encoder(_classifier(preproc)), preproc, info)


def test_a_backbone_keeps_numpy_info_values_as_plain_ones_that_save_and_load(task, tmp_path):
    # A NumPy float failed only when saving (not JSON serializable).
    _, preproc = task
    info = {"mask_rate": np.float32(0.25), "whole_word": np.bool_(True)}
    Backbone(_encoder(_classifier(preproc)), preproc, info).save(tmp_path / "bb")
    loaded = load_backbone(tmp_path / "bb").info
    assert loaded == {"mask_rate": 0.25, "whole_word": True}
    assert type(loaded["mask_rate"]) is float and type(loaded["whole_word"]) is bool
