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
