"""Language helpers: POS tags, the QF/TI transformations, gold trees and the grammars, against McCoy's files."""

from __future__ import annotations

import nltk
import pytest

from grokking.data import AUXILIARIES, gold_tree, pos_tag, present, question, read_original
from grokking.data.grammar import lexicon, load_grammar
from grokking.data.lexicon import VERB_FORMS
from grokking.errors import DataError
from grokking.tasks import get_task


def words(text: str) -> list[str]:
    return text.split()


def test_pos_tags_cover_every_category():
    qf, ti = get_task("qf"), get_task("ti")
    assert [qf.pos_tag(w) for w in words("the yak who does smile near my newts doesn't . ? quest")] == list(
        "DNRAVPDNATTM")
    assert [ti.pos_tag(w) for w in words("some ravens that slept upon her zebra read . PRESENT")] == list(
        "DNRVPDNVTM")
    assert set(AUXILIARIES) == {w for w in lexicon("qf")["Aux_S"] + lexicon("qf")["Aux_P"]}
    with pytest.raises(DataError, match="unknown qf word"):
        pos_tag("qf", "slept")


def test_question_rules_differ_only_with_a_subject_rc():
    decl = words("the yak who does smile doesn't sleep")
    assert question(decl, "hierarchical") == words("doesn't the yak who does smile sleep")
    assert question(decl, "linear") == words("does the yak who smile doesn't sleep")
    plain = words("my newts don't amuse the yak who does smile")
    assert question(plain, "hierarchical") == question(plain, "linear") == words(
        "don't my newts amuse the yak who does smile")


def test_present_rules_differ_on_an_attractor():
    past = words("the yak near my newts slept")
    assert present(past, "hierarchical") == words("the yak near my newts sleeps")
    assert present(past, "linear") == words("the yak near my newts sleep")
    gap = words("her ravens that my zebra admired read")
    assert present(gap, "hierarchical") == words("her ravens that my zebra admires read")
    assert present(gap, "linear") == words("her ravens that my zebra admires reads")


def test_past_lexicon_matches_the_grammar():
    forms = lexicon("ti")
    assert set(forms["V_intrans_pl"] + forms["V_trans_pl"]) == set(VERB_FORMS)
    assert set(forms["V_intrans_sg"] + forms["V_trans_sg"]) == {sg for sg, _ in VERB_FORMS.values()}
    pasts = {past for _, past in VERB_FORMS.values()}
    assert {"slept", "swam", "ate", "read", "high_fived"} <= pasts and len(pasts) == 18


def test_gold_tree_shapes():
    tree = gold_tree("qf", words("our tyrannosaurus doesn't comfort my yaks who some yak does high_five"))
    assert tree.pformat(margin=1000) == (
        "(S (NP our tyrannosaurus) (VP doesn't (VP comfort (NP (NP my yaks) "
        "(RC who (S (NP some yak) (VP does high_five)))))))")
    tree = gold_tree("ti", words("the yak near my newts slept"))
    assert tree == nltk.Tree("S", [nltk.Tree("NP", [nltk.Tree("NP", ["the", "yak"]),
                                                    nltk.Tree("PP", ["near", nltk.Tree("NP", ["my", "newts"])])]),
                                   "slept"])
    with pytest.raises(DataError, match="cannot parse"):
        gold_tree("qf", words("the yak does"))


def _reference(reference_data, name: str, task: str):
    return [(list(e.input[:-2]), e.input[-1], list(e.output)) for e in read_original(reference_data / name, task)]


@pytest.mark.parametrize("task,name", [("qf", "question.dev"), ("ti", "tense.dev")])
def test_grammar_derives_every_reference_input(reference_data, task, name):
    parser = nltk.ChartParser(load_grammar(task))
    for sentence, _, _ in _reference(reference_data, name, task):
        grammar_form = present(sentence, "hierarchical") if task == "ti" else sentence
        assert next(parser.parse([*grammar_form, "."]), None) is not None, sentence


def test_transformations_reproduce_reference_outputs(reference_data):
    for sentence, marker, output in _reference(reference_data, "question.dev", "qf"):
        expected = [*question(sentence, "hierarchical"), "?"] if marker == "quest" else [*sentence, "."]
        assert output == expected
        if marker == "quest":  # in-domain questions are ambiguous between the two rules
            assert question(sentence, "linear") == question(sentence, "hierarchical")
    for sentence, marker, output in _reference(reference_data, "tense.dev", "ti"):
        expected = [*present(sentence, "hierarchical"), "."] if marker == "PRESENT" else [*sentence, "."]
        assert output == expected
        if marker == "PRESENT":
            assert present(sentence, "linear") == present(sentence, "hierarchical")


def _spans(tree) -> set[tuple[int, int]]:
    spans = set()

    def walk(node, start: int) -> int:
        if isinstance(node, str):
            return start + 1
        end = start
        for child in node:
            end = walk(child, end)
        spans.add((start, end))
        return end

    walk(tree, 0)
    return spans


@pytest.mark.parametrize("task,name,marker,paper", [("qf", "question.dev", "quest", 0.6628),
                                                    ("ti", "tense.dev", None, 0.5015)])
def test_gold_trees_are_binary_and_right_branching_f1_matches_paper(reference_data, task, name, marker, paper):
    matched = total = 0
    for sentence, line_marker, _ in _reference(reference_data, name, task):
        tree = gold_tree(task, sentence)
        assert tree.leaves() == sentence
        assert all(len(t) == 2 for t in tree.subtrees())
        if marker and line_marker != marker:
            continue
        gold = _spans(tree)
        right_branching = {(i, len(sentence)) for i in range(len(sentence) - 1)}
        matched += len(gold & right_branching)
        total += len(gold)
    assert matched / total == pytest.approx(paper, abs=0.01)  # measured: QF 0.6626, TI 0.5053
