"""Tests for BLEU/chrF reporting and the worst-sentence view."""

import pytest

import ktlite
from ktlite import seq2seq
from ktlite.seq2seq.report import corpus_scores, top_losses, translation_reporter, view_top_losses

from seq2seq_corpora import task_pairs


def test_corpus_scores_are_perfect_for_identical_text_and_lower_otherwise():
    same = corpus_scores(["il gatto dorme sul letto"], ["il gatto dorme sul letto"])
    assert same == pytest.approx({"bleu": 100.0, "chrf": 100.0})
    worse = corpus_scores(["il cane corre"], ["il gatto dorme"])
    assert worse["bleu"] < 50 and worse["chrf"] < 50


def test_reporter_scores_decoded_translations(translator):
    model, preproc = translator
    sources, targets = task_pairs(12, seed=21)
    data = seq2seq.pair_dataset(sources, targets, preproc)
    text, scores = translation_reporter(preproc)(model, data, None)
    assert scores == pytest.approx({"bleu": 100.0, "chrf": 100.0}) and "BLEU 100.0" in text
    wrong = seq2seq.pair_dataset(sources, [t + " a" for t in targets], preproc)
    assert translation_reporter(preproc)(model, wrong, None)[1]["bleu"] < 100


def test_the_report_says_why_bleu_is_zero_on_references_shorter_than_four_words():
    from ktlite.seq2seq.report import _score_text

    short = ["il gatto", "un cane nero"]
    scores = corpus_scores(short, short)
    assert scores == {"bleu": 0.0, "chrf": 100.0}
    assert "fewer than 4 words" in _score_text(scores, short, 1)
    long = ["il gatto nero dorme"]
    assert "fewer than 4" not in _score_text(corpus_scores(long, long), long, 1)
    assert "fewer than 4" not in _score_text({"bleu": 0.0, "chrf": 3.0}, long, 1)


def test_top_losses_put_a_wrong_reference_first(translator, capsys):
    model, preproc = translator
    sources, targets = task_pairs(12, seed=22)
    targets[5] = "f f f f"
    data = seq2seq.pair_dataset(sources, targets, preproc)
    rows = view_top_losses(model, preproc, data, n=2)
    assert rows[0][0] == 5 and rows[0][1] > rows[1][1]
    assert "reference: f f f f" in capsys.readouterr().out
    with pytest.raises(ValueError, match="`n` must be a positive int. Received: n=0"):
        top_losses(model, data, n=0)


def test_the_learners_top_losses_are_each_sentences_own_loss(translator):
    # They were each sentence's summed loss times the data's sentences / real tokens, so a
    # sentence's loss grew with the data around it, and long sentences ranked first.
    model, preproc = translator
    sources, targets = task_pairs(6, seed=24)
    targets[2] = "f f f f"
    data = seq2seq.pair_dataset(sources, targets, preproc)
    learner = ktlite.get_learner(model, data, data, verbose=0)
    own = dict(top_losses(model, data, n=6))
    rows = learner.top_losses(6)
    assert rows[0][0] == 2
    for index, loss, *_ in rows:
        assert loss == pytest.approx(own[index], rel=1e-4, abs=1e-6)
    alone = learner.top_losses(1, seq2seq.pair_dataset(sources[2:3], targets[2:3], preproc))
    assert alone[0][1] == pytest.approx(own[2], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("n", ["3", True, 2.0, None])
def test_top_losses_refuses_an_n_of_the_wrong_type(translator, n):
    model, preproc = translator
    data = seq2seq.pair_dataset(*task_pairs(4, seed=23), preproc)
    with pytest.raises(TypeError, match=f"`n` must be a positive int. Received: n={n!r}"):
        top_losses(model, data, n=n)


def test_the_reporter_refuses_bad_arguments_when_it_is_made():
    with pytest.raises(TypeError, match="`preproc` must be of type PairPreprocessor. "
                                        "Received: preproc of type int"):
        translation_reporter(1)
    with pytest.raises(ValueError, match="`preproc` must be a fitted PairPreprocessor"):
        translation_reporter(seq2seq.PairPreprocessor())
    preproc = seq2seq.PairPreprocessor(vocab_size=50).fit(*task_pairs(20, seed=24))
    for options, error in [({"beam_width": 0}, ValueError), ({"beam_width": "4"}, TypeError),
                           ({"beam_width": True}, TypeError), ({"beam_width": 65}, ValueError),
                           ({"max_length": 0}, ValueError),
                           ({"max_length": 2.0}, TypeError)]:
        (name, value), = options.items()
        with pytest.raises(error, match=f"Received: {name}={value!r}"):
            translation_reporter(preproc, **options)
    assert callable(translation_reporter(preproc, beam_width=2, max_length=None))
