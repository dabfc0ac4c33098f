"""Keras layers for Transformer models, serializable under the `ktlite>` package.

Importing this package registers every layer with Keras, so a `.keras` file that uses
them loads with `keras.saving.load_model(path)` (also with `safe_mode=True`) once
`ktlite.layers` has been imported; the FT-Transformer's own layer, of a task folder,
needs `import ktlite.tabular.layers`. A model compiled with a task's own loss and metrics
needs those registered too, for its compile state: `import ktlite.seq2seq.losses` for
translation and language models, `import ktlite.text.masked_lm` for masked-LM
pretraining (or `load_model(path, compile=False)`). The layers depend on Keras (and
TensorFlow as its backend) only.

Example:
    >>> from ktlite.layers import PatchEmbedding, TokenAndPositionEmbedding, TransformerEncoder
    >>> x = TokenAndPositionEmbedding(vocab_size=1000, sequence_length=64,
    ...                               embedding_dim=32)(token_ids)
    >>> x = TransformerEncoder(num_heads=4, intermediate_dim=64)(x)
    >>> patches = PatchEmbedding(patch_size=4, embedding_dim=32)(images)  # ViT tokens
"""

from ktlite.layers.masked_pooling import MaskedGlobalPooling
from ktlite.layers.patch_embedding import PatchEmbedding
from ktlite.layers.token_and_position_embedding import TokenAndPositionEmbedding
from ktlite.layers.transformer_decoder import TransformerDecoder
from ktlite.layers.transformer_encoder import TransformerEncoder

__all__ = [
    "MaskedGlobalPooling",
    "PatchEmbedding",
    "TokenAndPositionEmbedding",
    "TransformerDecoder",
    "TransformerEncoder",
]
