"""The thin TextPredictor.quantize / export(format="tflite") methods that delegate here."""

import numpy as np
import pytest

TEXTS = ["red item number 3", "blue item number 70", "green item"]


def test_predictor_quantize_and_export_saved_model(text_predictor, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops for loading)

    small = text_predictor.quantize("int8")
    assert small is not text_predictor and type(small) is type(text_predictor)
    small.export(tmp_path / "sm")
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    out = serve(texts=tf.constant(TEXTS))
    np.testing.assert_allclose(out["probabilities"].numpy(), small.predict_proba(TEXTS), atol=1e-5)
    assert [label.decode() for label in out["labels"].numpy()] == small.predict(TEXTS)


def test_predictor_export_tflite(text_predictor, tmp_path):
    from ktlite.compress import load_tflite

    text_predictor.export(tmp_path / "lite", format="tflite", quantize="dynamic")
    runner = load_tflite(tmp_path / "lite")
    assert runner.tokenizer_inside
    assert runner.predict(TEXTS) == text_predictor.predict(TEXTS)


def test_predictor_export_rejects_bad_format_and_quantize(text_predictor, tmp_path):
    with pytest.raises(ValueError, match="`format`"):
        text_predictor.export(tmp_path / "x", format="onnx")
    with pytest.raises(ValueError, match="`quantize`"):
        text_predictor.export(tmp_path / "y", quantize="int8")
    with pytest.raises(ValueError, match="`quantize`"):
        text_predictor.export(tmp_path / "z", format="tflite", quantize="int4")
    with pytest.raises(ValueError, match="`mode`"):
        text_predictor.quantize("int2")


@pytest.mark.parametrize("kwargs, name", [
    ({"format": None}, "format"),
    ({"format": 1}, "format"),
    ({"format": "tflite", "quantize": 8}, "quantize"),
    ({"format": "tflite", "quantize": True}, "quantize"),
])
def test_predictor_export_refuses_a_format_or_quantize_of_the_wrong_type(
    text_predictor, tmp_path, kwargs, name
):
    with pytest.raises(TypeError, match=f"`{name}` must be .*Received: {name}="):
        text_predictor.export(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("mode", [None, 8])
def test_predictor_quantize_refuses_a_mode_of_the_wrong_type(text_predictor, mode):
    with pytest.raises(TypeError, match=f"`mode` must be one of .*Received: mode={mode!r}"):
        text_predictor.quantize(mode)


def test_quantize_keeps_the_predictors_own_settings(text_predictor):
    from ktlite import compress

    class Configured(type(text_predictor)):
        def __init__(self, model, preproc, batch_size=32, marker=1):
            super().__init__(model, preproc, batch_size=batch_size)
            self.marker = marker

        def _settings(self):
            return {"marker": self.marker}

    configured = Configured(text_predictor.model, text_predictor.preproc, batch_size=5,
                            marker=7)
    small = compress.quantize_predictor(configured, "int8")
    assert type(small) is Configured and (small.marker, small.batch_size) == (7, 5)
