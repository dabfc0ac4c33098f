"""Tests for greedy, beam and sampling decoding with and without the key/value cache."""

import numpy as np
import pytest
import tensorflow as tf

from ktlite.seq2seq.decoding import DecodingOptions, decode
from ktlite.seq2seq.inference import translate_ids, translate_strings
from ktlite.seq2seq.models import EncoderDecoderSteps

from seq2seq_corpora import task_pairs


def _translate(translator, sources, max_length=8, **options):
    model, preproc = translator
    steps = EncoderDecoderSteps(model)
    run = tf.function(lambda s: translate_strings(steps, preproc, s, max_length,
                                                  DecodingOptions(**options)))
    return [t.decode() for t in run(tf.constant(sources)).numpy()]


def _ids(translator, sources, **options):
    model, preproc = translator
    steps = EncoderDecoderSteps(model)
    source_ids = preproc.tokenize_source(tf.constant(sources))
    run = tf.function(lambda s: translate_ids(steps, preproc, s, 8, DecodingOptions(**options)))
    return run(source_ids).numpy()


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_greedy_decoding_solves_the_task_exactly(translator, task):
    sources, targets = task_pairs(30, seed=1, tasks=(task,))
    assert _translate(translator, sources) == targets


def test_beam_search_solves_the_task_exactly(translator):
    sources, targets = task_pairs(30, seed=2)
    assert _translate(translator, sources, method="beam", beam_width=3,
                      length_penalty=0.6) == targets


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_cache_and_full_rerun_give_identical_ids(translator, method):
    sources, _ = task_pairs(20, seed=4)
    options = dict(method=method, beam_width=3 if method == "beam" else 1)
    np.testing.assert_array_equal(_ids(translator, sources, **options),
                                  _ids(translator, sources, use_cache=False, **options))


def test_beam_width_one_is_greedy(translator):
    sources, _ = task_pairs(20, seed=5)
    np.testing.assert_array_equal(_ids(translator, sources, method="beam", beam_width=1),
                                  _ids(translator, sources))


def test_sampling_top_k_one_is_greedy_and_seeds_repeat(translator):
    sources, _ = task_pairs(20, seed=6)
    greedy = _ids(translator, sources)
    np.testing.assert_array_equal(_ids(translator, sources, method="sample", top_k=1), greedy)
    hot = dict(method="sample", temperature=5.0)
    first = _ids(translator, sources, seed=1, **hot)
    np.testing.assert_array_equal(_ids(translator, sources, seed=1, **hot), first)
    assert not np.array_equal(first, greedy)
    assert not np.array_equal(_ids(translator, sources, seed=2, **hot), first)


def test_tiny_top_p_keeps_only_the_most_likely_token(translator):
    sources, _ = task_pairs(20, seed=7)
    np.testing.assert_array_equal(
        _ids(translator, sources, method="sample", temperature=3.0, top_p=1e-6),
        _ids(translator, sources),
    )


def test_a_tiny_temperature_samples_the_most_likely_token():
    from ktlite.seq2seq.decoding import _sample

    # Logits over 34 divided by 1e-37 overflowed to inf: the first of them was taken.
    logits = tf.constant([[-1e9, 40.0, 50.0, 1.0, -3.0], [50.0, 25.0, -1.0, 0.0, 75.0]])
    for temperature in (1e-37, 2.0**-126, 1e-20):
        options = DecodingOptions(method="sample", temperature=temperature)
        for seed_row in range(3):
            picked = _sample(logits, options, 0, tf.constant([seed_row, seed_row + 7]))
            np.testing.assert_array_equal(picked.numpy(), [2, 4])
    # An infinite logit (a float16 one past 65,504) is the most likely token, at any
    # temperature and with top-k or top-p too.
    infinite = tf.constant([[1.0, 2.0, np.inf, 0.0]])
    for options in ({}, {"top_k": 2}, {"top_p": 0.9}, {"temperature": 1e-30}):
        picked = _sample(infinite, DecodingOptions(method="sample", **options), 0,
                         tf.constant([0]))
        assert picked.numpy().tolist() == [2]


def test_top_k_and_top_p_keep_the_most_likely_token_at_a_huge_temperature(translator):
    sources, _ = task_pairs(20, seed=7)
    greedy = _ids(translator, sources)
    for narrow in ({"top_k": 1}, {"top_p": 1e-6}):
        np.testing.assert_array_equal(
            _ids(translator, sources, method="sample", temperature=1e38, **narrow), greedy)


def test_max_length_caps_the_output_and_blank_sources_give_empty_strings(translator):
    sources = ["copy a b c d", "   ", ""]
    assert _translate(translator, sources, max_length=2) == ["a b", "", ""]


class _FavoursBanned:
    """A steps object whose logits always rank token 0, then 1, then 5, then 3 the
    highest: with 0 and 1 banned, every decoder must choose 5 (3 for beam's runner-up)."""

    logits = tf.constant([[9.0, 8.0, 0.0, 6.0, 0.0, 7.0]])

    def init_caches(self, batch_size, length):
        return []

    def step(self, ids, index, caches, context):
        return tf.tile(self.logits[None], [tf.shape(ids)[0], tf.shape(ids)[1], 1]), caches

    def full(self, ids, context):
        return self.step(ids, 0, [], context)[0]


@pytest.mark.parametrize("options", [
    {}, {"use_cache": False}, {"method": "beam", "beam_width": 2},
    {"method": "sample", "top_k": 1}, {"method": "sample", "top_p": 0.5},
])
def test_banned_tokens_are_never_chosen_even_when_most_likely(options):
    ids = decode(_FavoursBanned(), {}, tf.fill([2, 1], 4), tf.ones([2], tf.int32), 3,
                 end_id=2, options=DecodingOptions(**options), banned_ids=(0, 1)).numpy()
    np.testing.assert_array_equal(ids, [[4, 5, 5, 5]] * 2)


def test_sampling_follows_the_distribution_and_each_row_draws_its_own_numbers():
    from ktlite.seq2seq.decoding import _sample

    probs = np.array([0.5, 0.3, 0.15, 0.05])
    rows = 20_000
    logits = tf.constant(np.log(np.tile(probs, (rows, 1))), tf.float32)
    options = DecodingOptions(method="sample", seed=7)
    drawn = _sample(logits, options, tf.constant(3), tf.range(rows)).numpy()
    counts = np.bincount(drawn, minlength=4) / rows
    np.testing.assert_allclose(counts, probs, atol=0.015)  # about 4 standard errors
    # A row's draw depends on its index, not on its place in the batch.
    tail = _sample(logits[:5], options, tf.constant(3), tf.range(rows - 5, rows)).numpy()
    np.testing.assert_array_equal(tail, drawn[-5:])
    # Positions draw new numbers.
    later = _sample(logits, options, tf.constant(4), tf.range(rows)).numpy()
    assert (later != drawn).mean() > 0.3


def test_top_p_stops_at_the_tokens_that_already_hold_it_up_to_rounding():
    from ktlite.seq2seq.decoding import _sample

    # 0.5 + 0.3 hold 0.8 but add up below it in float32: the third token was drawn 16%.
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    rows = 20_000
    logits = tf.constant(np.log(np.tile(probs, (rows, 1))), tf.float32)
    for top_p, kept in ((0.8, 2), (0.81, 3), (1e-9, 1)):
        options = DecodingOptions(method="sample", top_p=top_p, seed=3)
        counts = np.bincount(_sample(logits, options, tf.constant(0), tf.range(rows)).numpy(),
                             minlength=4) / rows
        assert (counts[:kept] > 0).all() and not counts[kept:].any(), (top_p, counts)
        np.testing.assert_allclose(counts[:kept], probs[:kept] / probs[:kept].sum(), atol=0.015)


class _Uniform:
    """A steps object whose logits are all equal: what a row samples is its random numbers
    alone, so rows drawing the same numbers sample the same tokens."""

    vocab = 64

    def init_caches(self, batch_size, length):
        return []

    def step(self, ids, index, caches, context):
        return tf.zeros([tf.shape(ids)[0], tf.shape(ids)[1], self.vocab]), caches

    def full(self, ids, context):
        return self.step(ids, 0, [], context)[0]


def _sampled(prefixes, context=None, first_row=0, new=12, padding=0):
    """The `new` tokens sampled after each prefix (a list of ids) from `_Uniform`."""
    lengths = [len(p) for p in prefixes]
    width = max(lengths) + padding
    prefix = tf.constant([p + [0] * (width - len(p)) for p in prefixes], tf.int32)
    ids = decode(_Uniform(), {} if context is None else context, prefix, tf.constant(lengths),
                 new, end_id=1, options=DecodingOptions(method="sample"), banned_ids=(0, 1),
                 first_row=first_row).numpy()
    return [row[n:n + new].tolist() for row, n in zip(ids, lengths)]


def test_different_prompts_draw_independent_numbers_from_one_seed():
    # One prompt per call, each the first row: the numbers depended on the row index and
    # position only, so every one-token prompt sampled the same tokens.
    firsts = [_sampled([[token]])[0] for token in range(2, 32)]
    assert len({tuple(tokens) for tokens in firsts}) == 30
    # 62 tokens are allowed: 30 independent draws give about 24 different first tokens.
    assert len({tokens[0] for tokens in firsts}) >= 15
    # A longer prompt sampled a shifted copy of a shorter one's tokens.
    short, longer = _sampled([[4]])[0], _sampled([[4, 5]])[0]
    assert np.mean(np.equal(short[1:], longer[:-1])) < 0.3
    # The source (a translation's input, its prefix the start token) keys them too.
    first, second = (_sampled([[3]], {"source_ids": tf.constant([source])})[0]
                     for source in ([5, 6, 7], [8, 9]))
    assert np.mean(np.equal(first, second)) < 0.3


def test_a_row_samples_the_same_tokens_whatever_its_batch_padding_and_source_padding():
    prefixes = [[4, 5, 6], [7], [8, 9]]
    sources = tf.constant([[5, 6, 7, 0], [8, 0, 0, 0], [9, 9, 0, 0]])
    batch = _sampled(prefixes, {"source_ids": sources})
    for row, prefix in enumerate(prefixes):
        width = int(np.count_nonzero(sources[row]))
        alone = _sampled([prefix], {"source_ids": sources[row:row + 1, :width]},
                         first_row=row, padding=2)
        assert alone == [batch[row]]
    # The same prompt at other rows draws other numbers.
    assert len({tuple(tokens) for tokens in _sampled([[4]] * 3)}) == 3
