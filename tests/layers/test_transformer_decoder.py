"""Tests for ktlite.layers.TransformerDecoder."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite.layers import TokenAndPositionEmbedding, TransformerDecoder
from ktlite.layers import _incremental as step_ops

RNG = np.random.default_rng(0)
TARGET = RNG.normal(size=(2, 6, 8)).astype("float32")
SOURCE = RNG.normal(size=(2, 5, 8)).astype("float32")


def _perturbed_after(x, t):
    changed = x.copy()
    changed[:, t + 1:] = RNG.normal(size=changed[:, t + 1:].shape) * 10
    return changed


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("cross_attention", [False, True])
def test_a_position_never_sees_later_positions(norm_first, cross_attention):
    decoder = TransformerDecoder(2, 16, dropout=0.0, norm_first=norm_first)
    source = (SOURCE,) if cross_attention else ()
    reference = np.asarray(decoder(TARGET, *source))
    for t in range(TARGET.shape[1] - 1):
        out = np.asarray(decoder(_perturbed_after(TARGET, t), *source))
        np.testing.assert_allclose(out[:, : t + 1], reference[:, : t + 1], atol=1e-5)
        assert not np.allclose(out[:, t + 1:], reference[:, t + 1:])


def test_without_causal_mask_earlier_positions_see_later_ones():
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    out = decoder(_perturbed_after(TARGET, 2), use_causal_mask=False)
    assert not np.allclose(np.asarray(out)[:, :3], np.asarray(decoder(TARGET))[:, :3])


def test_padded_encoder_positions_are_ignored():
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    padding = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    junk = SOURCE.copy()
    junk[padding == 0] = 50.0
    np.testing.assert_allclose(
        np.asarray(decoder(TARGET, junk, encoder_padding_mask=padding)),
        np.asarray(decoder(TARGET, SOURCE, encoder_padding_mask=padding)),
        atol=1e-5,
    )


def test_functional_model_takes_both_padding_masks_from_keras_masks():
    target_ids = keras.Input((6,), dtype="int32")
    source_ids = keras.Input((5,), dtype="int32")
    embed_target = TokenAndPositionEmbedding(20, 6, 8)
    embed_source = TokenAndPositionEmbedding(20, 5, 8)
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    outputs = decoder(embed_target(target_ids), embed_source(source_ids))
    model = keras.Model([target_ids, source_ids], outputs)
    assert outputs._keras_mask is not None

    target = np.array([[3, 4, 5, 0, 0, 0]], dtype="int32")
    source = np.array([[7, 8, 0, 0, 0]], dtype="int32")
    # Without padding masks the padded encoder positions would be attended to, so the
    # padded batch would differ from the same sentences without padding.
    unpadded = decoder(embed_target(target[:, :3]), embed_source(source[:, :2]))
    np.testing.assert_allclose(np.asarray(model([target, source]))[:, :3],
                               np.asarray(unpadded), atol=1e-5)


def test_cross_attention_block_called_without_encoder_sequence_raises():
    decoder = TransformerDecoder(2, 16)
    decoder(TARGET, SOURCE)
    with pytest.raises(ValueError, match="built with cross-attention"):
        decoder(TARGET)


def test_decoder_only_block_called_with_encoder_sequence_raises():
    decoder = TransformerDecoder(2, 16)
    decoder(TARGET)
    with pytest.raises(ValueError, match="built without cross-attention"):
        decoder(TARGET, SOURCE)


def test_encoder_sequence_may_have_another_hidden_size():
    decoder = TransformerDecoder(2, 16)
    out = decoder(TARGET, np.zeros((2, 3, 12), "float32"))
    assert tuple(out.shape) == TARGET.shape


def test_hidden_dim_not_divisible_by_num_heads_names_both_values():
    with pytest.raises(ValueError, match="Received: num_heads=3, hidden_dim=8"):
        TransformerDecoder(3, 16)(TARGET)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_heads": -2}, ValueError, "Received: num_heads=-2"),
        ({"intermediate_dim": 0}, ValueError, "Received: intermediate_dim=0"),
        ({"dropout": -0.5}, ValueError, "Received: dropout=-0.5"),
        ({"activation": 3}, TypeError, "Received: activation=3"),
        ({"layer_norm_epsilon": -1e-5}, ValueError, "Received: layer_norm_epsilon=-1e-05"),
        ({"kernel_initializer": "nope"}, ValueError, "Received: kernel_initializer='nope'"),
        ({"bias_initializer": 5}, TypeError, "Received: bias_initializer=5"),
    ],
)
def test_invalid_arguments_raise_with_received_value(kwargs, error, message):
    args = {"num_heads": 2, "intermediate_dim": 8, **kwargs}
    with pytest.raises(error, match=message):
        TransformerDecoder(**args)


def test_config_round_trips_through_from_config():
    decoder = TransformerDecoder(2, 8, dropout=0.0, norm_first=True, name="dec")
    config = decoder.get_config()
    assert TransformerDecoder.from_config(config).get_config() == config


@pytest.mark.parametrize("cross_attention", [False, True])
def test_keras_round_trip_gives_identical_outputs(cross_attention, roundtrip):
    target = keras.Input((6, 8))
    inputs = [target]
    if cross_attention:
        source = keras.Input((5, 8))
        padding = keras.Input((5,), dtype="bool")
        inputs += [source, padding]
        outputs = TransformerDecoder(2, 16)(target, source, encoder_padding_mask=padding)
    else:
        outputs = TransformerDecoder(2, 16)(target)
    model = keras.Model(inputs, outputs)
    args = [TARGET, SOURCE, np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], bool)]
    args = args[: len(inputs)]
    np.testing.assert_array_equal(np.asarray(roundtrip(model)(args)), np.asarray(model(args)))


def test_mixed_bfloat16_runs_in_bfloat16(mixed_bfloat16):
    decoder = TransformerDecoder(2, 16)
    out = decoder(TARGET, SOURCE)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert np.isfinite(np.asarray(out, dtype="float32")).all()


def test_eager_encoder_sequence_keeps_its_keras_mask_for_reuse():
    embed = TokenAndPositionEmbedding(20, 5, 8)
    source = embed(np.array([[7, 8, 0, 0, 0]], dtype="int32"))
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    first = np.asarray(decoder(TARGET[:1], source))
    assert source._keras_mask is not None
    np.testing.assert_array_equal(np.asarray(decoder(TARGET[:1], source)), first)


def _incremental(decoder, target, source, chunks, use_cross_cache):
    cache = decoder.init_cache(target.shape[0], target.shape[1])
    memory = decoder.cross_attention_cache(source) if use_cross_cache else None
    outputs, start = [], 0
    for size in chunks:
        step, cache = decoder(
            target[:, start:start + size],
            None if use_cross_cache else source,
            self_attention_cache=cache,
            cache_index=start,
            cross_attention_cache=memory,
        )
        outputs.append(np.asarray(step))
        start += size
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("cross_attention", [False, True])
@pytest.mark.parametrize("chunks", [(1,) * 6, (3, 1, 2)])
def test_cached_incremental_outputs_equal_a_full_rerun(norm_first, cross_attention, chunks):
    decoder = TransformerDecoder(2, 16, dropout=0.0, norm_first=norm_first)
    source = SOURCE if cross_attention else None
    reference = np.asarray(decoder(TARGET, source))
    out = _incremental(decoder, TARGET, source, chunks, use_cross_cache=cross_attention)
    np.testing.assert_allclose(out, reference, atol=1e-5)


def test_cache_respects_encoder_padding_and_runs_in_a_tf_function():
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    padding = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    reference = np.asarray(decoder(TARGET, SOURCE, encoder_padding_mask=padding))
    memory = decoder.cross_attention_cache(SOURCE)

    @tf.function
    def step(x, cache, index):
        return decoder(x, None, encoder_padding_mask=padding, self_attention_cache=cache,
                       cache_index=index, cross_attention_cache=memory)

    cache = decoder.init_cache(2, 6)
    for t in range(6):
        out, cache = step(TARGET[:, t:t + 1], cache, tf.constant(t))
        np.testing.assert_allclose(np.asarray(out)[:, 0], reference[:, t], atol=1e-5)


def test_cache_index_without_cache_raises():
    decoder = TransformerDecoder(2, 16)
    decoder(TARGET)
    with pytest.raises(ValueError, match="cache_index"):
        decoder(TARGET, self_attention_cache=decoder.init_cache(2, 6))


def test_cross_attention_cache_of_a_decoder_only_block_raises():
    decoder = TransformerDecoder(2, 16)
    decoder(TARGET)
    with pytest.raises(ValueError, match="no cross-attention"):
        decoder.cross_attention_cache(SOURCE)


def test_cached_steps_in_mixed_bfloat16_follow_a_full_run(mixed_bfloat16):
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    reference = np.asarray(decoder(TARGET, SOURCE), dtype="float32")
    out = _incremental(decoder, TARGET, SOURCE, (2, 1, 3), use_cross_cache=True)
    assert keras.backend.standardize_dtype(decoder.init_cache(2, 6).dtype) == "bfloat16"
    np.testing.assert_allclose(out.astype("float32"), reference, atol=0.1)


def test_incremental_decoding_refuses_training():
    decoder = TransformerDecoder(2, 16)
    decoder(TARGET)
    with pytest.raises(ValueError, match="inference only. Received: training=True"):
        decoder(TARGET[:, :1], self_attention_cache=decoder.init_cache(2, 6), cache_index=0,
                training=True)


def test_cache_holds_keys_and_values_per_head_in_order_of_position():
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    decoder(TARGET)
    cache = decoder.init_cache(2, 6)
    assert tuple(cache.shape) == (2, 2, 2, 6, 4)  # batch, keys/values, heads, length, head_dim
    _, cache = decoder(TARGET[:, :3], self_attention_cache=cache, cache_index=0)
    keys = np.asarray(decoder._self_attention.key_dense(TARGET[:, :3]))  # (2, 3, heads, 4)
    np.testing.assert_allclose(np.asarray(cache)[:, 0, :, :3], keys.transpose(0, 2, 1, 3),
                               atol=1e-6)
    assert not np.asarray(cache)[:, :, :, 3:].any()


def _graph_op_types(fn, *args):
    graph = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return [node.op for node in nodes]


def test_a_cached_step_avoids_the_kernels_whose_fixed_cost_dominated_decoding():
    # At small batches a one-token step's cost is per-call overhead, and through oneDNN
    # (TensorFlow's x86 default) einsums, batched matmuls and softmax cost ~30-70 us a
    # call whatever their size, against ~2 us for a 2-D matmul (see `_incremental` and
    # benchmarks/translation.py speed): the Keras sublayers used them for everything.
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    decoder(TARGET, SOURCE)
    memory = decoder.cross_attention_cache(SOURCE)
    ops = _graph_op_types(
        lambda x, c: decoder(x, None, self_attention_cache=c, cache_index=3,
                             cross_attention_cache=memory),
        TARGET[:, :1], decoder.init_cache(2, 6),
    )
    assert "Einsum" not in ops and "Softmax" not in ops
    # q, k, v, output; cross q, output; two feed-forward: all plain 2-D matmuls.
    assert ops.count("MatMul") == 8
    # Batched matmuls only in the branches for large attention products (two per
    # attention: scores and mix).
    assert ops.count("BatchMatMulV2") == 4


@pytest.mark.parametrize("small_product", [0, 1 << 30])
def test_both_attention_product_paths_match_a_full_run(monkeypatch, small_product):
    monkeypatch.setattr(step_ops, "SMALL_PRODUCT", small_product)
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    reference = np.asarray(decoder(TARGET, SOURCE))
    out = _incremental(decoder, TARGET, SOURCE, (3, 1, 2), use_cross_cache=True)
    np.testing.assert_allclose(out, reference, atol=1e-5)


def test_cached_steps_attend_to_an_encoder_of_another_hidden_size():
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    source = RNG.normal(size=(2, 5, 12)).astype("float32")
    reference = np.asarray(decoder(TARGET, source))
    out = _incremental(decoder, TARGET, source, (2, 1, 3), use_cross_cache=True)
    np.testing.assert_allclose(out, reference, atol=1e-5)


def test_cached_steps_trace_with_unknown_lengths_and_head_sizes():
    # A predictor's string signature traces the step with only ranks known.
    decoder = TransformerDecoder(2, 16, dropout=0.0)
    reference = np.asarray(decoder(TARGET, SOURCE))

    @tf.function(input_signature=[
        tf.TensorSpec((None, None, 8)), tf.TensorSpec((None, None, None, None, None)),
        tf.TensorSpec((None, None, None, None, None)), tf.TensorSpec((), tf.int32),
    ])
    def step(x, cache, memory, index):
        return decoder(x, None, self_attention_cache=cache, cache_index=index,
                       cross_attention_cache=memory)

    cache, memory = decoder.init_cache(2, 6), decoder.cross_attention_cache(SOURCE)
    for t in range(6):
        out, cache = step(TARGET[:, t:t + 1], cache, memory, tf.constant(t))
        np.testing.assert_allclose(np.asarray(out)[:, 0], reference[:, t], atol=1e-5)
