"""Checks every public layer in ktlite.layers against the package's shared conventions."""

import ast
import inspect
import json
import pathlib
import sys

import keras
import pytest

import ktlite.layers

LAYER_ARGS = {
    "TokenAndPositionEmbedding": {"vocab_size": 10, "sequence_length": 4, "embedding_dim": 8},
    "TransformerEncoder": {"num_heads": 2, "intermediate_dim": 8},
    "TransformerDecoder": {"num_heads": 2, "intermediate_dim": 8},
    "MaskedGlobalPooling": {"mode": "first"},
    "PatchEmbedding": {"patch_size": 4, "embedding_dim": 8},
}
ALLOWED_IMPORTS = {"keras", "tensorflow", "ktlite.layers", "ktlite.arguments"} | set(
    sys.stdlib_module_names
)


def test_every_public_layer_is_covered_here():
    assert sorted(ktlite.layers.__all__) == sorted(LAYER_ARGS)


@pytest.mark.parametrize("name", sorted(LAYER_ARGS))
def test_layer_is_registered_under_the_ktlite_package(name):
    cls = getattr(ktlite.layers, name)
    assert keras.saving.get_registered_name(cls) == f"ktlite>{name}"
    assert keras.saving.get_registered_object(f"ktlite>{name}") is cls


@pytest.mark.parametrize("name", sorted(LAYER_ARGS))
def test_config_is_json_and_rebuilds_an_equal_layer(name):
    cls = getattr(ktlite.layers, name)
    config = cls(**LAYER_ARGS[name]).get_config()
    assert json.loads(json.dumps(config)) == config
    assert cls.from_config(config).get_config() == config


@pytest.mark.parametrize("name", sorted(LAYER_ARGS))
def test_docstring_has_args_raises_and_example_sections(name):
    doc = inspect.getdoc(getattr(ktlite.layers, name))
    for section in ("Args:", "Raises:", "Example:"):
        assert section in doc


@pytest.mark.parametrize(
    "path", sorted(pathlib.Path(ktlite.layers.__file__).parent.glob("*.py")), ids=lambda p: p.name
)
def test_layers_import_only_keras_tensorflow_and_the_standard_library(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module]
        else:
            continue
        for module in modules:
            assert any(
                module == allowed or module.startswith(allowed + ".")
                for allowed in ALLOWED_IMPORTS
            ), f"{path.name} imports {module}"
            assert not module.startswith("keras.src"), f"{path.name} imports private {module}"
