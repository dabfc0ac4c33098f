"""The backbone folder: a pretrained text encoder with the vocabulary it was trained on.

```
my_backbone/
  ktlite.json        format "ktlite-backbone", format_version 1, versions,
                     files: {name: sha256} for every other file
  encoder.keras      token ids (batch, maxlen) -> vectors (batch, maxlen, embed_dim)
  backbone.json      how it was pretrained (mask rate, whole words)
  preprocessor.json  vocabulary settings (maxlen, lowercase; no labels)
  vocab.txt
```

The encoder's layers carry the names of `ktlite.models.Transformer` (`embedding`,
`embedding_norm`, `encoder_0`, ...), so a classifier is that same model with these weights
copied in; its architecture is read from the encoder, not stored twice.

Example:
    >>> backbone = load_backbone("my_backbone")
    >>> backbone.preproc.vocab_size, backbone.architecture()["num_layers"]
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import keras

# Registers the layers a saved encoder refers to, before any load_model.
import ktlite.layers  # noqa: F401
from ktlite import saving
from ktlite.arguments import check_bool, check_fitted
from ktlite.text.masking import check_mask_rate
from ktlite.text.preprocessor import CONFIG_FILE, VOCAB_FILE, TextPreprocessor

__all__ = [
    "Backbone", "load_backbone", "resolve_backbone", "check_backbone_preproc",
    "backbone_sizes",
]

FORMAT_NAME = "ktlite-backbone"
FORMAT_VERSION = 1
ENCODER_FILE = "encoder.keras"
INFO_FILE = "backbone.json"
_FILES = frozenset({ENCODER_FILE, INFO_FILE, CONFIG_FILE, VOCAB_FILE})
_INFO_KEYS = frozenset({"mask_rate", "whole_word"})
# The encoder's own layers with weights, named as in `ktlite.models.Transformer`; a
# classifier's pooling and head (or a masked-LM head) are never among them.
_NORMS = ("embedding_norm", "final_norm")
_BLOCK = re.compile(r"encoder_\d+")


class Backbone:
    """A pretrained encoder and its preprocessor.

    Args:
        encoder: the encoder `keras.Model` (token ids -> one vector per token): the
            masked-LM model's nested `"encoder"` (`learner.backbone` of `text.pretrain`
            holds it), not a classifier, whose pooling and head give one vector per text.
        preproc: the `TextPreprocessor` whose vocabulary the encoder was trained on.
        info: pretraining facts, a dict with any of `mask_rate` (a number in (0, 1)) and
            `whole_word` (a bool), or None; `load_backbone` applies the same rules. Kept
            as plain Python values (a NumPy number is taken).

    Raises:
        TypeError: if `encoder` is not a `keras.Model`, `preproc` not a
            `TextPreprocessor`, `info` not a dict (or None), or one of its values of
            another type.
        ValueError: if `preproc` is not fitted, `encoder` is not a ktlite text encoder
            (see `architecture`), they differ in `vocab_size` or `maxlen`, `info` holds
            another key, or its `mask_rate` is outside (0, 1).

    Example:
        >>> learner.backbone.save("my_backbone")
    """

    def __init__(self, encoder: keras.Model, preproc: TextPreprocessor,
                 info: dict[str, Any] | None = None) -> None:
        if not isinstance(encoder, keras.Model):
            raise TypeError(f"`encoder` must be a keras.Model. Received: encoder={encoder!r}")
        check_fitted(preproc, TextPreprocessor)
        self.encoder = encoder
        self.preproc = preproc
        self.info = _check_info({} if info is None else info)
        arch = self.architecture()
        if (arch["vocab_size"], arch["maxlen"]) != (preproc.vocab_size, preproc.maxlen):
            raise ValueError(
                f"`encoder` takes {arch['maxlen']} tokens from a vocabulary of "
                f"{arch['vocab_size']}, but `preproc` gives {preproc.maxlen} from "
                f"{preproc.vocab_size}: pass the preprocessor the encoder was pretrained with."
            )

    def architecture(self) -> dict[str, Any]:
        """The `ktlite.models.Transformer` arguments that rebuild this encoder.

        Returns:
            A dict with `vocab_size`, `maxlen`, `embed_dim`, `num_heads`, `num_layers`,
            `ff_dim`, `norm_first`, `position`, `activation`, `layer_norm_epsilon`.

        Raises:
            ValueError: if the encoder is not a ktlite text encoder (a layer named
                `embedding`, blocks named `encoder_0`, ..., and one output of one
                `embed_dim` vector per token, which a classifier's pooled output is not);
                nothing of it is quoted but its output shape.

        Example:
            >>> backbone.architecture()["embed_dim"]
            128
        """
        names = [layer.name for layer in self.encoder.layers]
        blocks = [layer for layer in self.encoder.layers if _BLOCK.fullmatch(layer.name)]
        try:
            if "embedding" not in names or not blocks:
                raise KeyError
            embedding = self.encoder.get_layer("embedding").get_config()
            block = blocks[0].get_config()
            _check_per_token_output(self.encoder, embedding["embedding_dim"])
            return {
                "vocab_size": embedding["vocab_size"],
                "maxlen": embedding["sequence_length"],
                "embed_dim": embedding["embedding_dim"],
                "position": embedding["position"],
                "num_heads": block["num_heads"],
                "num_layers": len(blocks),
                "ff_dim": block["intermediate_dim"],
                "norm_first": block["norm_first"],
                "activation": block["activation"],
                "layer_norm_epsilon": block["layer_norm_epsilon"],
            }
        except KeyError:
            raise ValueError(
                "`encoder` is not a ktlite text encoder: it needs a layer named 'embedding' "
                "(TokenAndPositionEmbedding) and Transformer blocks named 'encoder_0', ..."
            ) from None

    def weight_layers(self) -> list[keras.layers.Layer]:
        """The encoder's own layers with weights, the ones a model built on it takes.

        These are the embedding, its normalization (post-norm), the blocks `encoder_0`,
        ... and the final normalization (pre-norm); no other layer of `encoder` is ever
        copied, so a pooling or head layer cannot leak into a new task's model.

        Returns:
            The layers, in the encoder's order.

        Example:
            >>> [layer.name for layer in backbone.weight_layers()]
            ['embedding', 'embedding_norm', 'encoder_0', 'encoder_1']
        """
        return [
            layer for layer in self.encoder.layers
            if layer.weights and (layer.name == "embedding" or layer.name in _NORMS
                                  or _BLOCK.fullmatch(layer.name))
        ]

    def save(self, path: str | os.PathLike) -> None:
        """Writes the backbone folder atomically, with SHA-256 hashes in `ktlite.json`.

        Args:
            path: the folder; an existing one must be a backbone ktlite wrote.

        Raises:
            TypeError: if `path` is not a str or `os.PathLike`.
            FileExistsError: if `path` is a file or a folder ktlite did not write.

        Example:
            >>> backbone.save("my_backbone")
        """
        config = self.preproc.get_config()
        config.update(label_mode=None, class_names=None, num_outputs=None)
        vocab_only = TextPreprocessor.from_config(config, self.preproc.vocab)

        def write(folder: Path) -> None:
            saving.save_keras_model(self.encoder, folder / ENCODER_FILE, include_optimizer=False)
            vocab_only.save(folder)
            saving.write_json(folder / INFO_FILE, self.info)
            saving.write_manifest(folder, {"format": FORMAT_NAME,
                                           "format_version": FORMAT_VERSION,
                                           "versions": _versions()})

        saving.write_folder(saving.as_path(path, "path"), write, _is_backbone_folder, "backbone")

    def __repr__(self) -> str:
        arch = self.architecture()
        return (f"Backbone(vocab_size={arch['vocab_size']}, maxlen={arch['maxlen']}, "
                f"embed_dim={arch['embed_dim']}, num_layers={arch['num_layers']})")


def _check_info(info: Any) -> dict[str, Any]:
    """Returns the pretraining facts `info` as a new dict of plain values, checked: the
    rules of `Backbone(info=)` and of a saved `backbone.json`. Whatever comes from `info`
    is quoted after `Received:` only, which `saving.invalid_file` drops for a file."""
    if not isinstance(info, dict):
        raise TypeError(f"`info` must be a dict with keys among {sorted(_INFO_KEYS)}, or "
                        f"None. Received: info={info!r:.80}")
    unknown = [key for key in info if key not in _INFO_KEYS]
    if unknown:
        raise ValueError(f"`info` may hold only the keys {sorted(_INFO_KEYS)}. Received: "
                         f"other keys {', '.join(repr(key) for key in unknown):.200}")
    checked = {}
    if "mask_rate" in info:
        checked["mask_rate"] = check_mask_rate(info["mask_rate"], "info['mask_rate']")
    if "whole_word" in info:
        checked["whole_word"] = check_bool(info["whole_word"], "info['whole_word']")
    return checked


def _check_per_token_output(encoder: keras.Model, embed_dim: int) -> None:
    """Refuses an encoder whose output is not one `embed_dim` vector per token."""
    outputs = getattr(encoder, "outputs", None) or []
    shapes = [tuple(getattr(output, "shape", ())) for output in outputs]
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][-1] == embed_dim:
        return
    received = shapes[0] if len(shapes) == 1 else f"{len(shapes)} outputs"
    raise ValueError(
        "`encoder` must output one vector per token, shape (batch, length, "
        f"{embed_dim}), as the encoder of `ktlite.text.pretrain` does; a text classifier "
        "(pooling and a head: one vector per text) is not an encoder. Pass the masked-LM "
        "model's encoder: `learner.backbone` or `learner.save_backbone(path)` of "
        "`text.pretrain`, or `model.get_layer('encoder')` of its model. "
        f"Received: an encoder whose output shape is {received}"
    )


def _versions() -> dict[str, str]:
    import tensorflow as tf

    import ktlite

    return {"ktlite": ktlite.__version__, "keras": keras.__version__, "tensorflow": tf.__version__}


def _read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / saving.MANIFEST_FILE
    if not os.path.lexists(file):
        raise FileNotFoundError(f"{folder} has no {saving.MANIFEST_FILE}; it is not a backbone.")
    manifest = saving.read_json(file)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ValueError(f"{file} is not a ktlite backbone file (format is not {FORMAT_NAME!r}).")
    version = manifest.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # True == 1: a bool is no version
        raise ValueError(
            f"{file} has an unknown format_version; this ktlite reads version {FORMAT_VERSION}."
        )
    saving.verify_files(folder, manifest.get("files"), _FILES, "a backbone")
    return manifest


def _is_backbone_folder(folder: Path) -> bool:
    try:
        manifest = _read_manifest(folder)
    except (OSError, ValueError):
        return False
    present = {entry.name for entry in folder.iterdir()}
    return present == {saving.MANIFEST_FILE, *manifest["files"]}


def load_backbone(path: str | os.PathLike) -> Backbone:
    """Loads a backbone folder written by `save_backbone`, verifying every file first.

    Args:
        path: the folder.

    Returns:
        The `Backbone` (encoder loaded with `safe_mode=True`).

    Raises:
        TypeError: if `path` is not a str or `os.PathLike`.
        FileNotFoundError: if the folder or a file is missing.
        ValueError: if a file was changed after saving, is malformed, or the files do not
            belong together.

    Example:
        >>> backbone = load_backbone("my_backbone")
    """
    folder = saving.as_path(path, "path")
    saving.finish_interrupted_save(folder, _is_backbone_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No backbone folder at {str(folder)!r}.")
    with saving.folder_lock(folder, exclusive=False):
        _read_manifest(folder)
        preproc = TextPreprocessor.load(folder)
        try:
            info = _check_info(saving.read_json(folder / INFO_FILE))
        except (TypeError, ValueError) as err:
            raise saving.invalid_file(folder / INFO_FILE, "backbone info", err) from None
        encoder = saving.load_keras_model(folder / ENCODER_FILE)
    try:
        return Backbone(encoder, preproc, info)
    except (TypeError, ValueError) as err:
        raise ValueError(f"The backbone in {folder} is inconsistent: {err}") from None


def resolve_backbone(backbone: Any) -> Backbone:
    """A `Backbone` from a folder path, a `Backbone`, or a `MaskedLMLearner`.

    Args:
        backbone: what the user passed as `backbone=`.

    Returns:
        The `Backbone`.

    Raises:
        TypeError: for anything else.

    Example:
        >>> resolve_backbone("my_backbone")
    """
    if isinstance(backbone, Backbone):
        return backbone
    if isinstance(backbone, (str, os.PathLike)):
        return load_backbone(backbone)
    if isinstance(getattr(backbone, "backbone", None), Backbone):
        return backbone.backbone
    raise TypeError(
        "`backbone` must be a backbone folder path, a ktlite.text.Backbone, or the learner "
        f"returned by ktlite.text.pretrain. Received: backbone={backbone!r}"
    )


def check_backbone_preproc(backbone: Backbone, preproc: Any) -> None:
    """Refuses a preprocessor that tokenizes differently from the backbone.

    Args:
        backbone: the backbone.
        preproc: the classifier's preprocessor.

    Raises:
        ValueError: if the vocabulary, normalization or `maxlen` differ; the message says
            how to build a matching preprocessor.

    Example:
        >>> check_backbone_preproc(backbone, preproc)
    """
    ours = backbone.preproc
    differs = [
        name for name, a, b in (
            ("vocabulary", list(ours.vocab), list(getattr(preproc, "vocab", []))),
            ("lowercase", ours.lowercase, getattr(preproc, "lowercase", None)),
            ("maxlen", ours.maxlen, getattr(preproc, "maxlen", None)),
        ) if a != b
    ]
    if differs:
        raise ValueError(
            f"`preproc` does not match the backbone ({', '.join(differs)} differ), so the "
            "pretrained weights would read the wrong tokens. Build the preprocessor from the "
            "backbone: `texts_from_array(x, y, backbone=path)` (or any texts_from_* loader "
            "with `backbone=`)."
        )


def backbone_sizes(backbone: Backbone, defaults: dict[str, Any], **asked: Any) -> dict[str, Any]:
    """The backbone's architecture, refusing sizes that differ from the default and its own.

    A model builder's size arguments (`embed_dim`, `num_heads`, ...) are replaced by the
    backbone's. A size equal to the builder's default is replaced quietly, whether it was
    left out or passed explicitly: only the value is compared, so the two cannot be told
    apart (`embed_dim=128`, the default, beside a 16-wide backbone builds 16 wide). A size
    set to a value other than both its default and the backbone's cannot be honoured and
    is refused rather than ignored.

    Args:
        backbone: the backbone.
        defaults: the builder's defaults of the size arguments, by name.
        **asked: the values the builder received, by the same names.

    Returns:
        `backbone.architecture()`.

    Raises:
        ValueError: naming each size that differs from both its default and the backbone's.

    Example:
        >>> sizes = backbone_sizes(backbone, {"embed_dim": 128}, embed_dim=128)
    """
    sizes = backbone.architecture()
    clash = {k: v for k, v in asked.items() if v != defaults[k] and v != sizes[k]}
    if clash:
        wanted = ", ".join(f"{k}={v!r}" for k, v in clash.items())
        kept = ", ".join(f"{k}={sizes[k]!r}" for k in clash)
        raise ValueError(
            f"The backbone's sizes replace the model's ({kept}); leave them out beside "
            f"`backbone=`. Received: {wanted}"
        )
    return sizes
