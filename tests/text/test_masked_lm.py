"""Masked-LM pretraining: masking statistics, the backbone folder, and the lift it gives.

The corpus is a toy language of 4 topics with 12 words each; every text draws 8 words of
one topic. The few labelled texts use only words 0-3 of their topic and the test texts only
words 6-11, so a classifier trained from scratch has never seen a test word (chance), while
an encoder pretrained on unlabelled texts has learned which words share a topic.
"""

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import ktlite
from folders import assert_quotes_nothing_crafted, rehash
from ktlite import text
from ktlite.text.masking import TokenMasker, check_mask_rate
from ktlite.text.preprocessor import CLS_ID, MASK_ID, PAD_ID, TextPreprocessor

TOPICS, WORDS = 4, 12
SIZES = {"embed_dim": 32, "num_heads": 2, "num_layers": 1}


def _sentence(rng, topic, allowed, length=8):
    return " ".join(f"t{topic}w{w}" for w in rng.choice(allowed, size=length))


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    unlabelled = [_sentence(rng, rng.integers(TOPICS), np.arange(WORDS)) for _ in range(1500)]
    lab_y = [t for t in range(TOPICS) for _ in range(8)]
    lab_x = [_sentence(rng, t, np.arange(4)) for t in lab_y]
    test_y = [t for t in range(TOPICS) for _ in range(25)]
    test_x = [_sentence(rng, t, np.arange(6, WORDS)) for t in test_y]
    return unlabelled, (lab_x, lab_y), (test_x, test_y)


@pytest.fixture(scope="module")
def pretrained(corpus):
    keras.utils.set_random_seed(0)
    learner = text.pretrain(corpus[0], vocab_size=200, batch_size=32, seed=1, verbose=0,
                            **SIZES)
    history = learner.fit_onecycle(5e-3, 4, verbose=0)
    return learner, history.history["loss"]


def _ids_and_masks(whole_word, texts, seed=3, vocab_size=400):
    preproc = TextPreprocessor(maxlen=32, vocab_size=vocab_size).fit_vocab(texts)
    masker = TokenMasker(preproc, rate=0.15, whole_word=whole_word, seed=seed)
    ids = preproc.preprocess(texts)
    inputs, targets, weights = masker.mask(tf.constant(ids))
    return preproc, masker, ids, inputs, targets.numpy(), weights.numpy()


def test_masking_chooses_15_percent_and_corrupts_80_10_10():
    rng = np.random.default_rng(1)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 150, size=rng.integers(3, 30)))
             for _ in range(3000)]
    _, _, ids, inputs, targets, weights = _ids_and_masks(False, texts)
    real = (ids != PAD_ID) & (ids != CLS_ID)
    positions = inputs["mask_positions"].numpy()
    chosen = weights > 0
    rows = np.repeat(np.arange(len(ids))[:, None], positions.shape[1], axis=1)
    original = ids[rows[chosen], positions[chosen]]
    corrupted = inputs["token_ids"].numpy()[rows[chosen], positions[chosen]]
    assert chosen.sum() / real.sum() == pytest.approx(0.15, abs=0.005)
    np.testing.assert_array_equal(targets[chosen], original)
    assert np.mean(corrupted == MASK_ID) == pytest.approx(0.8, abs=0.02)
    kept = np.mean(corrupted == original)
    assert kept == pytest.approx(0.1 + 0.1 / 150, abs=0.015)  # random may redraw itself
    assert np.mean((corrupted != MASK_ID) & (corrupted != original)) == pytest.approx(
        0.1, abs=0.015)
    assert not np.any(ids[:, 0] != inputs["token_ids"].numpy()[:, 0])  # [CLS] untouched
    unchosen = inputs["token_ids"].numpy().copy()
    unchosen[rows[chosen], positions[chosen]] = ids[rows[chosen], positions[chosen]]
    np.testing.assert_array_equal(unchosen, ids)  # nothing else changed


def test_whole_word_masking_predicts_every_piece_of_a_chosen_word():
    rng = np.random.default_rng(2)
    # Hundreds of distinct words from a few syllables: a small vocabulary must split them.
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po"]
    texts = [" ".join("".join(rng.choice(syllables, size=rng.integers(1, 4)))
                      for _ in range(8)) for _ in range(2000)]
    preproc, masker, ids, inputs, _, weights = _ids_and_masks(True, texts, vocab_size=40)
    continuation = np.array([t.startswith("##") for t in preproc.vocab])
    positions = inputs["mask_positions"].numpy()
    chosen_any = False
    for row in range(200):
        picked = set(positions[row][weights[row] > 0].tolist())
        for pos in picked:
            # Every continuation right after a chosen piece is chosen too.
            nxt = pos + 1
            while nxt < ids.shape[1] and continuation[ids[row, nxt]]:
                assert nxt in picked
                chosen_any = True
                nxt += 1
    assert chosen_any
    real = (ids != PAD_ID) & (ids != CLS_ID)
    assert (weights > 0).sum() / real.sum() == pytest.approx(0.15, abs=0.02)


@pytest.mark.parametrize(
    "rate, error",
    [("0.15", TypeError), (True, TypeError), (None, TypeError), (0, ValueError),
     (1.0, ValueError), (-0.1, ValueError), (float("nan"), ValueError)],
)
def test_check_mask_rate_raises_type_error_for_a_wrong_type_and_value_error_out_of_range(
    rate, error
):
    with pytest.raises(error, match=r"`mask_rate` must be a float in \(0, 1\). Received: "
                                    rf"mask_rate={re.escape(repr(rate))}"):
        check_mask_rate(rate, "mask_rate")
    assert check_mask_rate(np.float64(0.15), "mask_rate") == 0.15


def test_masker_options_are_type_checked(corpus):
    preproc = TextPreprocessor(maxlen=16, vocab_size=200).fit_vocab(corpus[0], verbose=0)
    with pytest.raises(TypeError, match="whole_word='no'"):
        TokenMasker(preproc, whole_word="no")
    with pytest.raises(TypeError, match="seed='abc'"):
        TokenMasker(preproc, seed="abc")
    with pytest.raises(TypeError, match=r"`rate` must be a float in \(0, 1\). Received: "
                                        r"rate='0.15'"):
        TokenMasker(preproc, rate="0.15")
    assert TokenMasker(preproc, rate=np.float32(0.25)).rate == 0.25
    # `pretrain` names its own arguments, before any vocabulary is learned.
    with pytest.raises(ValueError, match=r"`mask_rate` must be a float in \(0, 1\). "
                                         r"Received: mask_rate=0"):
        text.pretrain(corpus[0], preproc=preproc, mask_rate=0, verbose=0)
    with pytest.raises(TypeError, match=r"`pretrain` got unknown keyword arguments \['bogus'\]"
                                        r".*'mixed_precision'"):
        text.pretrain(corpus[0], preproc=preproc, bogus=1, verbose=0)


def test_every_epoch_sees_new_masks():
    texts = ["the cat sat on the mat with a hat"] * 64
    preproc = TextPreprocessor(maxlen=16, vocab_size=100).fit_vocab(texts)
    data = ktlite.data.TaskDataset(np.array(texts, dtype=object), None,
                                   TokenMasker(preproc, seed=0), self_supervised=True)
    dataset, _ = ktlite.data.make_dataset(data, 64)
    first = next(iter(dataset))[0]["mask_positions"].numpy()
    second = next(iter(dataset))[0]["mask_positions"].numpy()
    assert not np.array_equal(first, second)


def test_masks_drawn_within_kept_draws_leave_the_next_ones_as_they_were():
    texts = ["the cat sat on the mat with a hat", "a dog ran in the park"] * 8
    preproc = TextPreprocessor(maxlen=16, vocab_size=100).fit_vocab(texts)
    ids = tf.constant(preproc.preprocess(texts))
    plain, kept = TokenMasker(preproc, seed=0), TokenMasker(preproc, seed=0)
    with kept.kept_draws():
        kept.mask(ids)
        # A pipeline built inside, read after the block (as tf.data reads ahead of a sweep).
        ahead = iter(tf.data.Dataset.from_tensors(ids).repeat().map(kept.mask))
    for _ in range(3):
        next(ahead)
    np.testing.assert_array_equal(kept.mask(ids)[0]["token_ids"].numpy(),
                                  plain.mask(ids)[0]["token_ids"].numpy())
    fixed = TokenMasker(preproc, fixed=True)
    with fixed.kept_draws():  # nothing to put back
        fixed.mask(ids)


def test_lr_find_leaves_the_training_maskers_draws_as_they_were(corpus):
    # The sweep drew its masks from the training masker's generator, so the next fit
    # trained on other masks than the same fit without `lr_find`. (The weights of two
    # seeded fits are not compared: tf.data's parallel map draws from the one generator in
    # an order of its own, so two seeded pretrainings differ anyway.)
    learner = text.pretrain(corpus[0][:64], maxlen=16, vocab_size=60, embed_dim=8,
                            num_heads=1, num_layers=1, batch_size=16, seed=0, verbose=0)
    before = learner.masker._generator.state.numpy().copy()
    learner.lr_find(num_steps=10, verbose=0)
    np.testing.assert_array_equal(learner.masker._generator.state.numpy(), before)


def test_a_fixed_masker_masks_the_same_batch_alike_every_time():
    texts = ["the cat sat on the mat with a hat", "a dog ran in the park"] * 32
    preproc = TextPreprocessor(maxlen=16, vocab_size=100).fit_vocab(texts)
    data = ktlite.data.TaskDataset(np.array(texts, dtype=object), None,
                                   TokenMasker(preproc, fixed=True), self_supervised=True)
    dataset, _ = ktlite.data.make_dataset(data, 64)
    first, second = (next(iter(dataset))[0]["token_ids"].numpy() for _ in range(2))
    np.testing.assert_array_equal(first, second)
    ids = preproc.preprocess(texts)
    assert np.any(first != ids[:, :first.shape[1]])
    assert all(np.array_equal(row, first[i % 2]) for i, row in enumerate(first))  # by text
    other = TokenMasker(preproc, seed=1, fixed=True).mask(tf.constant(ids))
    assert not np.array_equal(other[0]["token_ids"].numpy(), first)


def test_a_fixed_masker_masks_a_text_alike_whatever_its_batch():
    # Seeded from the whole batch, a text's masks moved with its batch-mates, its batch's
    # padding and its order: two batch sizes judged a model on different masks.
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 40, size=rng.integers(4, 15)))
             for _ in range(40)]
    preproc = TextPreprocessor(maxlen=32, vocab_size=100).fit_vocab(texts)
    masker = TokenMasker(preproc, fixed=True, whole_word=True)
    longest = int((preproc.preprocess(texts) != 0).sum(axis=1).max())
    assert longest < 32

    def masked(rows, width):
        inputs, targets, weights = masker.mask(tf.constant(preproc.preprocess(rows)[:, :width]))
        positions, weights = inputs["mask_positions"].numpy(), weights.numpy()
        return [(row[:longest].tolist(), sorted(zip(p[w > 0].tolist(), t[w > 0].tolist())))
                for row, p, t, w in zip(inputs["token_ids"].numpy(), positions,
                                        targets.numpy(), weights)]

    alone = [masked([t], 32)[0] for t in texts]
    assert masked(texts, 32) == alone
    assert masked(texts[::-1], longest) == alone[::-1]  # another order, less padding
    assert sum(len(chosen) for _, chosen in alone) > 20
    assert len({str(chosen) for _, chosen in alone}) > 30
    empty = tf.zeros([0, 8], tf.int32)  # no texts, eagerly and traced
    for mask in (masker.mask, tf.function(masker.mask)):
        inputs, targets, weights = mask(empty)
        assert inputs["token_ids"].shape == (0, 8) and weights.shape[0] == 0


def test_the_texts_judged_get_the_same_masks_every_pass(pretrained, corpus):
    # New masks each pass moved one model's loss by more than an epoch's progress.
    learner, _ = pretrained
    val_texts = corpus[2][0]
    scores = [learner.validate(val_data=val_texts, print_report=False) for _ in range(2)]
    assert scores[0] == scores[1]
    learner.val_data = val_texts
    try:
        losses = [learner.model.evaluate(learner._dataset(learner.val_data, training=False)[0],
                                         verbose=0, return_dict=True)["loss"] for _ in range(2)]
    finally:
        learner.val_data = None
    assert losses[0] == losses[1]


def test_length_bucketed_batches_carry_only_the_slots_their_texts_need():
    rng = np.random.default_rng(4)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 50, size=rng.integers(3, 14)))
             for _ in range(2000)]
    learner = text.pretrain(texts, maxlen=128, vocab_size=100, batch_size=50, seed=0,
                            verbose=0, **SIZES)
    masker = learner.masker
    assert masker.num_predictions > 16  # more prediction slots than a batch has positions
    batches = list(learner._dataset(learner.train_data, training=True)[0])
    assert {b[0]["token_ids"].shape[1] for b in batches} == {16}
    for inputs, targets, weights in batches:
        # As many slots as the batch's most-masked text needs: none is padding for all.
        weights = weights.numpy()
        most = int(weights.sum(axis=1).max())
        assert inputs["mask_positions"].shape[1] == targets.shape[1] == most < 16
        assert np.all(inputs["mask_positions"].numpy()[weights > 0] < 16)
    ids = np.concatenate([b[0]["token_ids"].numpy() for b in batches])
    chosen = sum(float(b[2].numpy().sum()) for b in batches)
    real = (ids != PAD_ID) & (ids != CLS_ID)
    assert chosen / real.sum() == pytest.approx(0.15, abs=0.01)
    before = learner.model.evaluate(learner._dataset(learner.train_data, False)[0],
                                    verbose=0, return_dict=True)["loss"]
    learner.fit_onecycle(5e-3, 1, verbose=0)
    after = learner.model.evaluate(learner._dataset(learner.train_data, False)[0],
                                   verbose=0, return_dict=True)["loss"]
    assert after < before


def test_pretraining_lowers_the_masked_lm_loss(pretrained):
    _, losses = pretrained
    assert losses[-1] < 0.7 * losses[0]


def test_predict_and_top_losses_say_why_a_masked_lm_learner_has_none(pretrained, corpus):
    learner, _ = pretrained
    for call in (lambda: learner.predict(corpus[0][:2]), lambda: learner.top_losses(2),
                 lambda: learner.view_top_losses(2, val_data=learner.train_data)):
        with pytest.raises(TypeError, match="masks drawn at random.*validate"):
            call()


def test_validate_without_val_texts_says_where_they_go_and_takes_texts_later(pretrained,
                                                                             corpus):
    learner, _ = pretrained
    assert learner.val_data is None
    with pytest.raises(ValueError, match="pass `val_data` here or `val_texts` to `text.pretrain`"):
        learner.validate()
    with pytest.raises(ValueError, match="`val_texts` to `text.pretrain`"):
        learner.autofit(1e-3, 1, monitor="val_loss")
    # Each copy of the 100 test texts gets its own masks: about 1,000 masked tokens, where
    # 100 texts' 120 made the accuracy swing from 0.04 to 0.18 between runs.
    scores = learner.validate(val_data=corpus[2][0] * 8, print_report=False)
    assert scores["masked_accuracy"] > 0.05  # ten times chance (1 / 200 words)
    with pytest.raises(ValueError, match="makes its targets from the texts"):
        learner.validate(val_data=corpus[2])


def _uniform_learner(texts, val_texts=None, mask_rate=0.15):
    """A tiny learner whose head scores every word alike: each masked token's loss is
    log(vocab_size), whatever the masks drawn."""
    learner = text.pretrain(texts, val_texts=val_texts, maxlen=16, vocab_size=60,
                            mask_rate=mask_rate, embed_dim=8, num_heads=1, num_layers=1,
                            batch_size=16, seed=0, verbose=0)
    head = learner.model.get_layer("lm_logits")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    return learner


def test_the_reported_masked_lm_loss_is_a_mean_over_masked_tokens_empty_texts_add_nothing(
    corpus
):
    texts = [" ".join(t.split()[:n]) for t, n in zip(corpus[0][:60], [1, 2, 3, 8] * 15)]
    padded = texts + [""] * 200  # length bucketing puts these in batches of their own
    learner = _uniform_learner(padded, val_texts=padded)
    expected = np.log(learner.preproc.vocab_size)
    for val in (texts, padded):
        scores = learner.validate(val_data=val, print_report=False)
        assert scores["loss"] == pytest.approx(expected, rel=1e-5)
    # A learning rate too small to move the weights: the loss logged stays log(vocab_size).
    history = learner.fit_onecycle(1e-12, 1, verbose=0).history
    assert history["loss"][0] == pytest.approx(expected, rel=1e-4)
    assert history["val_loss"][0] == pytest.approx(expected, rel=1e-4)


def test_masked_lm_model_reports_the_mean_over_masked_tokens_not_the_mean_of_batches(corpus):
    learner = text.pretrain(corpus[0][:50], maxlen=16, vocab_size=60, embed_dim=8,
                            num_heads=1, num_layers=1, seed=0, verbose=0)
    model = learner.model
    masker = TokenMasker(learner.preproc, rate=0.5, seed=0)
    # Two texts with many masked tokens, then twelve with one or none: equal batch means
    # would weigh the short texts' few tokens far more than their share.
    batches = [masker(tf.constant(corpus[0][:2])), masker(tf.constant(["t0w1"] * 12))]
    dataset = tf.data.Dataset.from_tensors(batches[0]).concatenate(
        tf.data.Dataset.from_tensors(batches[1]))
    total = count = 0.0
    for inputs, targets, weights in batches:
        losses = keras.losses.sparse_categorical_crossentropy(
            targets, model(inputs), from_logits=True).numpy()
        total += float((losses * weights.numpy()).sum())
        count += float(weights.numpy().sum())
    scores = model.evaluate(dataset, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(total / count, rel=1e-5)


def test_texts_with_nothing_to_mask_are_refused_and_a_draw_that_masks_nothing_is_nan(corpus):
    with pytest.raises(ValueError, match="`val_texts` must hold at least one text with a "
                                         "token to mask.*Received: 3 texts"):
        _uniform_learner(corpus[0][:20], val_texts=["", " ", ""])
    learner = _uniform_learner(corpus[0][:20], mask_rate=0.01)
    with pytest.raises(ValueError, match="`val_data` must hold at least one text with a "
                                         "token to mask"):
        learner.validate(val_data=["", ""], print_report=False)
    with pytest.raises(ValueError, match="`val_data` must hold at least one text with a "
                                         "token to mask"):
        learner.val_data = ["", " "]
    # One token at rate 0.01: the seeded draw masks nothing, which is no perfect score.
    scores = learner.validate(val_data=["t0w1", ""], print_report=False)
    assert np.isnan(scores["loss"]) and np.isnan(scores["masked_accuracy"])
    # The same in the logs of a fit (they read 0.0), and blank training texts are refused.
    learner.val_data = ["t0w1", ""]
    history = learner.fit_onecycle(1e-12, 1, verbose=0).history
    assert np.isnan(history["val_loss"][0]) and np.isnan(history["val_masked_accuracy"][0])
    with pytest.raises(ValueError, match="`texts` must hold at least one text with a token"):
        text.pretrain(["", " "] * 8, preproc=learner.preproc, verbose=0)


def test_a_pretrained_backbone_lifts_a_small_classifier(pretrained, corpus):
    learner, _ = pretrained
    (lab_x, lab_y), (test_x, test_y) = corpus[1], corpus[2]
    accuracy = {}
    for name in ("pretrained", "scratch"):
        keras.utils.set_random_seed(0)
        trn, val, preproc = text.texts_from_array(lab_x, lab_y, test_x, test_y,
                                                  backbone=learner, verbose=0)
        model = text.text_classifier("transformer", trn, preproc=preproc, verbose=0,
                                     backbone=learner if name == "pretrained" else None,
                                     **SIZES)
        clf = ktlite.get_learner(model, trn, val, batch_size=8, verbose=0)
        if name == "pretrained":
            clf.fine_tune(4, base_lr=1e-2, freeze_epochs=8, lr_mult=10)
        else:
            clf.fit_onecycle(1e-2, 12)
        accuracy[name] = float(np.mean(np.argmax(clf.predict(val), 1) == np.array(test_y)))
    assert accuracy["scratch"] < 0.5
    assert accuracy["pretrained"] > accuracy["scratch"] + 0.4


def test_backbone_folder_round_trips_and_refuses_a_changed_file(pretrained, corpus, tmp_path):
    learner, _ = pretrained
    folder = tmp_path / "backbone"
    learner.save_backbone(folder)
    learner.save_backbone(folder)  # replacing its own folder is allowed
    loaded = text.load_backbone(folder)
    assert loaded.preproc.vocab == learner.preproc.vocab
    assert loaded.preproc.label_mode is None
    for a, b in zip(loaded.encoder.get_weights(), learner.model.get_layer("encoder").get_weights()):
        np.testing.assert_array_equal(a, b)
    trn, _, preproc = text.texts_from_array(*corpus[1], backbone=folder, verbose=0)
    model = text.text_classifier("transformer", trn, preproc=preproc, backbone=folder,
                                 verbose=0)
    np.testing.assert_array_equal(model.get_layer("encoder_0").get_weights()[0],
                                  loaded.encoder.get_layer("encoder_0").get_weights()[0])
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                 "x"]) + "\n")
    with pytest.raises(ValueError, match="vocab.txt does not match the SHA-256"):
        text.load_backbone(folder)


def test_load_backbone_quotes_nothing_from_a_manifest_that_failed_validation(pretrained,
                                                                             tmp_path):
    learner, _ = pretrained
    folder = tmp_path / "backbone"
    learner.save_backbone(folder)
    assert_quotes_nothing_crafted(lambda: text.load_backbone(folder), folder / "ktlite.json")


def test_a_backbone_that_could_never_load_is_refused_at_save_and_load(
    pretrained, corpus, tmp_path
):
    learner, _ = pretrained
    _, _, other = text.texts_from_array(*corpus[1], vocab_size=60, verbose=0)
    with pytest.raises(ValueError, match="pass the preprocessor the encoder was pretrained"):
        text.save_backbone(learner.model, tmp_path / "never", preproc=other)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="\x1b[2Jcrafted")])
    with pytest.raises(ValueError, match="not a ktlite text encoder") as refused:
        text.Backbone(plain, learner.preproc)
    assert "crafted" not in str(refused.value)
    folder = tmp_path / "backbone"
    learner.save_backbone(folder)
    info = folder / "backbone.json"
    info.write_text(json.dumps({"mask_rate": "\x1b[2Jcrafted", "whole_word": False}))
    rehash(folder)
    with pytest.raises(ValueError, match=r"backbone info in .*backbone\.json': "
                                         r"`info\['mask_rate'\]` must be a float in \(0, 1\)\.$"
                       ) as refused:
        text.load_backbone(folder)
    assert "crafted" not in str(refused.value)
    info.write_text(json.dumps({"mask_rate": 0.15, "\x1b[2Jcrafted": False}))
    rehash(folder)
    with pytest.raises(ValueError, match="`info` may hold only the keys") as refused:
        text.load_backbone(folder)
    assert "crafted" not in str(refused.value)


def test_a_backbone_loads_in_a_fresh_process(pretrained, tmp_path):
    learner, _ = pretrained
    folder = tmp_path / "backbone"
    learner.save_backbone(folder)
    code = ("import sys; from ktlite import text; "
            "print(text.load_backbone(sys.argv[1]).encoder.count_params())")
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == learner.model.get_layer("encoder").count_params()


def test_a_preprocessor_with_another_vocabulary_is_refused(pretrained, corpus):
    learner, _ = pretrained
    trn, _, preproc = text.texts_from_array(*corpus[1], vocab_size=100, verbose=0)
    with pytest.raises(ValueError, match=r"Build the preprocessor from the backbone.*backbone="):
        text.text_classifier("transformer", trn, preproc=preproc, backbone=learner, verbose=0)
    with pytest.raises(ValueError, match="maxlen"):
        text.texts_from_array(*corpus[1], backbone=learner, maxlen=7, verbose=0)


def test_settings_the_backbone_overrides_are_refused_when_set_explicitly(pretrained, corpus):
    import inspect

    from ktlite.text.models import SIZE_DEFAULTS

    learner, _ = pretrained
    backbone = learner.backbone
    for loader in (text.texts_from_array, text.texts_from_csv, text.texts_from_df,
                   text.texts_from_folder):
        params = inspect.signature(loader).parameters  # the rules below read these defaults
        assert params["lowercase"].default is None and params["vocab_size"].default == 16000
    for builder in (text.text_classifier, text.text_regression_model):
        params = inspect.signature(builder).parameters
        assert {k: params[k].default for k in SIZE_DEFAULTS} == SIZE_DEFAULTS
    with pytest.raises(ValueError, match=r"`vocab_size`.*Received: vocab_size=5000"):
        text.texts_from_array(*corpus[1], backbone=backbone, vocab_size=5000, verbose=0)
    for other in (False, np.False_):
        with pytest.raises(ValueError, match=r"`lowercase` must be None or the backbone's True"):
            text.texts_from_array(*corpus[1], backbone=backbone, lowercase=other, verbose=0)
    wrong_types = {"lowercase": "yes", "maxlen": "64", "vocab_size": True}
    for name, value in wrong_types.items():
        with pytest.raises(TypeError, match=f"`{name}` must be .*Received: {name}={value!r}"):
            text.texts_from_array(*corpus[1], backbone=backbone, verbose=0, **{name: value})
    assert text.texts_from_array(*corpus[1], backbone=backbone, lowercase=True,
                                 verbose=0)[2].lowercase is True
    same = backbone.preproc.vocab_size
    trn, _, preproc = text.texts_from_array(*corpus[1], backbone=backbone, vocab_size=same,
                                            verbose=0)
    sizes = backbone.architecture()
    with pytest.raises(ValueError, match=r"replace.*Received: embed_dim=\d+, num_layers=7"):
        text.text_classifier("transformer", trn, preproc=preproc, backbone=backbone,
                             embed_dim=sizes["embed_dim"] * 2, num_layers=7, verbose=0)
    model = text.text_classifier("transformer", trn, preproc=preproc, backbone=backbone,
                                 embed_dim=sizes["embed_dim"], verbose=0)
    assert model.get_layer("embedding").get_config()["embedding_dim"] == sizes["embed_dim"]


def test_pretraining_drops_nothing_and_models_from_the_backbone_drop_at_their_own_rate(
        pretrained, corpus):
    learner, _ = pretrained
    encoder = learner.model.get_layer("encoder")
    ids = tf.constant(learner.preproc.preprocess(corpus[0][:4]))
    np.testing.assert_array_equal(encoder(ids, training=True), encoder(ids, training=True))
    trn, _, preproc = text.texts_from_array(*corpus[1], backbone=learner, verbose=0)
    model = text.text_classifier("transformer", trn, preproc=preproc, backbone=learner,
                                 verbose=0)
    assert model.get_layer("encoder_0").dropout == 0.1
    features = keras.Model(model.inputs, model.get_layer("encoder_0").output)
    assert not np.allclose(features(ids, training=True), features(ids, training=True))


def test_a_preprocessor_of_another_kind_or_unfitted_is_refused_before_training():
    from ktlite.tabular import TabularPreprocessor

    texts = [f"t0w{i} t1w{i}" for i in range(40)]
    with pytest.raises(TypeError, match="`preproc` must be of type TextPreprocessor. "
                                        "Received: preproc of type TabularPreprocessor"):
        text.pretrain(texts, preproc=TabularPreprocessor(), verbose=0)
    with pytest.raises(ValueError, match="Received: an unfitted TextPreprocessor"):
        text.pretrain(texts, preproc=TextPreprocessor(), verbose=0)


def test_numpy_sizes_are_taken_as_the_classifier_takes_them():
    # np.int64 reached the head's Dense raw, which Keras refused as "units=16".
    texts = [f"t0w{i} t1w{i}" for i in range(40)]
    learner = text.pretrain(texts, vocab_size=100, embed_dim=np.int64(16),
                            num_heads=np.int32(2), num_layers=1, verbose=0)
    assert learner.model.get_layer("lm_dense").units == 16


def test_maxlen_and_vocab_size_beside_a_preprocessor_must_be_left_out_or_its_own():
    # They were ignored: `pretrain(texts, preproc=pp, maxlen=64)` trained at pp's length.
    texts = [f"t0w{i} t1w{i} t2w{i}" for i in range(40)]
    preproc = TextPreprocessor(maxlen=16, vocab_size=5000).fit_vocab(texts)
    with pytest.raises(ValueError, match=r"`maxlen` must be None or `preproc`'s 16.*"
                                         r"Received: maxlen=64"):
        text.pretrain(texts, preproc=preproc, maxlen=64, verbose=0)
    with pytest.raises(ValueError, match=rf"`vocab_size` must be None or `preproc`'s "
                                         rf"{preproc.vocab_size}.*Received: vocab_size=50"):
        text.pretrain(texts, preproc=preproc, vocab_size=50, verbose=0)
    with pytest.raises(TypeError, match="maxlen"):
        text.pretrain(texts, preproc=preproc, maxlen="16", verbose=0)
    for vocab_size in (preproc.vocab_size, 5000):  # the size learned or the one asked for
        learner = text.pretrain(texts, preproc=preproc, maxlen=16, vocab_size=vocab_size,
                                embed_dim=8, num_heads=1, num_layers=1, verbose=0)
        assert learner.preproc is preproc


def test_validate_judges_in_the_learners_evaluation_batches(monkeypatch):
    # It batched 64 texts, length-bucketed, whatever `eval_batch_size` and `bucketing` said.
    texts = [f"t0w{i} t1w{i} t2w{i}" for i in range(40)]
    learner = text.pretrain(texts, val_texts=texts, maxlen=32, vocab_size=60, embed_dim=8,
                            num_heads=1, num_layers=1, eval_batch_size=8, bucketing=False,
                            verbose=0)
    shapes = []
    evaluate = learner.model.evaluate

    def spy(dataset, **kwargs):
        shapes.extend(tuple(x["token_ids"].shape) for x, *_ in dataset)
        return evaluate(dataset, **kwargs)

    monkeypatch.setattr(learner.model, "evaluate", spy)
    for val_data in (None, texts):
        learner.validate(val_data=val_data, print_report=False)
    assert shapes == [(8, 32)] * 10


def test_save_backbone_refuses_a_preproc_beside_a_learner_and_checks_it_beside_a_model(
    tmp_path
):
    # Beside a learner it was ignored, whatever it was: the learner's own was written.
    texts = [f"t0w{i} t1w{i} t2w{i}" for i in range(40)]
    learner = text.pretrain(texts, maxlen=16, vocab_size=60, embed_dim=8, num_heads=1,
                            num_layers=1, verbose=0)
    other = TextPreprocessor(maxlen=32, vocab_size=60, lowercase=False).fit_vocab(texts)
    for preproc in (other, "nonsense"):
        with pytest.raises(ValueError, match=r"`preproc` is for a masked-LM model given as "
                                             r"`source`.*Received: preproc="):
            text.save_backbone(learner, tmp_path / "bb", preproc=preproc)
    assert not (tmp_path / "bb").exists()
    with pytest.raises(TypeError, match="`preproc` must be of type TextPreprocessor. "
                                        "Received: preproc of type str"):
        text.save_backbone(learner.model, tmp_path / "bb", preproc="nonsense")
    text.save_backbone(learner, tmp_path / "bb")
    assert text.load_backbone(tmp_path / "bb").preproc.maxlen == 16
