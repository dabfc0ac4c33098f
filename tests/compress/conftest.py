"""Tiny models and data shared by the compression tests."""

import numpy as np
import pytest


@pytest.fixture
def token_data():
    """256 sequences of 12 token ids (vocab 200, padded) whose class is the first id mod 3."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 200, size=(256, 12)).astype("int32")
    x[:, 9:] = 0
    return x, (x[:, 0] % 3).astype("int32")


def tiny_transformer(embed_dim=16, num_outputs=3):
    from ktlite.models import Transformer

    return Transformer(
        vocab_size=200,
        maxlen=12,
        embed_dim=embed_dim,
        num_heads=2,
        num_layers=1,
        num_outputs=num_outputs,
    )


@pytest.fixture
def transformer():
    return tiny_transformer()


@pytest.fixture
def make_transformer():
    """The `tiny_transformer(embed_dim=16, num_outputs=3)` factory."""
    return tiny_transformer


@pytest.fixture(scope="session")
def text_setup():
    """A tiny text task: `(trn, val, preproc, model)`, the model briefly trained."""
    import keras

    from ktlite import text

    keras.utils.set_random_seed(7)
    texts = [f"{w} item number {i}" for i in range(60) for w in ("red", "blue", "green")]
    labels = [t.split()[0] for t in texts]
    trn, val, preproc = text.texts_from_array(
        texts, labels, val_pct=0.2, maxlen=8, vocab_size=120, verbose=0
    )
    model = text.text_classifier(
        "transformer", trn, preproc=preproc, embed_dim=16, num_heads=2, num_layers=1, verbose=0
    )
    import ktlite

    ktlite.get_learner(model, trn, val, batch_size=32, verbose=0).fit_onecycle(5e-3, 2, verbose=0)
    return trn, val, preproc, model


@pytest.fixture
def text_predictor(text_setup):
    import ktlite

    _, _, preproc, model = text_setup
    return ktlite.get_predictor(model, preproc)


def _mixed_precision_copy(model, data, policy):
    """`model` (compiled here if it is not) as `get_learner(..., mixed_precision=policy)`
    rebuilds it: float32 variables holding the same weights, float16/bfloat16 compute."""
    import warnings

    import ktlite

    if not model.compiled:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    unchanged = _snapshot(model)
    with warnings.catch_warnings():
        # A trained model's optimizer state does not carry over to float16 loss scaling;
        # only the weights matter here.
        warnings.filterwarnings("ignore", message=r"The optimizer's state .* could not be")
        learner = ktlite.get_learner(
            model, data, batch_size=32, mixed_precision=policy, verbose=0
        )
    unchanged()
    mixed = learner.model
    assert mixed is not model and mixed.get_layer("head").dtype_policy.name == "float32"
    weighted = [layer for layer in mixed.layers if layer.weights and layer.name != "head"]
    assert {layer.dtype_policy.name for layer in weighted} == {policy}
    return mixed


@pytest.fixture
def mixed_precision_copy():
    """`mixed_precision_copy(model, data, policy)`: the learner's mixed-precision rebuild."""
    return _mixed_precision_copy


def _snapshot(model):
    from ktlite import compat

    def state():
        policies = [(layer.name, layer.dtype_policy.name)
                    for layer in compat.flatten_layers(model, include_self=True, recursive=True)]
        return policies, [np.array(w, copy=True) for w in model.get_weights()]

    policies, weights = state()

    def assert_unchanged():
        now_policies, now_weights = state()
        assert now_policies == policies
        assert len(now_weights) == len(weights)
        for old, new in zip(weights, now_weights):
            np.testing.assert_array_equal(new, old)

    return assert_unchanged


@pytest.fixture
def snapshot():
    """`check = snapshot(model)`; `check()` asserts the model's dtype policies (every layer)
    and weights are what they were."""
    return _snapshot
