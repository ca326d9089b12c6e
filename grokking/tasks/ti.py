"""Tense inflection (McCoy et al. 2020): a past-tense sentence -> itself ("PAST") or its present tense
("PRESENT"), each verb agreeing with its own subject. The language itself is `grokking.data.ti`.

Accuracy (the original code's `main_right_tense`): greedy decoding of the output, every token kept up to EOS,
"." stripped, then identical part-of-speech sequences and the right main verb (the second verb after a subject
relative clause, else the first). One deliberate difference: the original's decoder drops the last token before
EOS. That token is normally the final "." (stripped anyway: both agree), but an output missing its final "."
loses a word there and is always wrong, while here it is scored on its words and can be right. Gen is a fresh
random subset per evaluation in the original (code: 2000 of 10k; `task.eval_gen_sample`).
Diagnostics: the main verb of a PRESENT output is critical (candidates: its singular and plural forms), and every
output position where agreeing with the most recent noun differs is structure-sensitive.
"""

from __future__ import annotations

from collections.abc import Sequence

from grokking.data import ti
from grokking.data.examples import Example
from grokking.data.lexicon import PRESENT, pos_tag
from grokking.data.trees import parse
from grokking.tasks.base import SentenceRoles
from grokking.tasks.transduction import TransductionTask


def strip_fullstop(words: Sequence[str]) -> list[str]:
    words = list(words)
    return words[:-1] if words and words[-1] == "." else words


def main_verb_correct(target: Sequence[str], predicted: Sequence[str]) -> bool:
    """`main_right_tense`: identical POS sequences, then the main verb (2nd V after a subject RC, else 1st)."""
    target_pos = [pos_tag("ti", w) for w in target]
    try:
        predicted_pos = [pos_tag("ti", w) for w in predicted]
    except Exception:  # a decoded non-word (pad, SOS, a marker) cannot match the target's POS sequence
        return False
    if predicted_pos != target_pos:
        return False
    verbs = [i for i, tag in enumerate(target_pos) if tag == "V"]
    needed = 2 if len(target_pos) > 2 and target_pos[2] == "R" else 1
    if len(verbs) < needed:
        return False
    main = verbs[needed - 1]
    return predicted[main] == target[main]


class TenseInflection(TransductionTask):
    name = "ti"
    summary = "tense inflection: past to present, each verb agreeing with its subject"
    markers = ("PAST", "PRESENT")
    output_ends = {"PAST": ".", "PRESENT": "."}
    stem = "tense"
    language = ti
    grammars = ("ti", "ti")
    decodes = True

    def decoded_correct(self, target: Sequence[str], predicted: Sequence[str]) -> bool:
        return main_verb_correct(strip_fullstop(target), strip_fullstop(predicted))

    def roles(self, example: Example, task_cfg, vocab) -> SentenceRoles:
        roles = SentenceRoles.blank(len(example.tokens) + 1)
        if example.marker != "PRESENT":
            return roles
        past = list(example.words)
        linear, hierarchical = ti.present(past, "linear"), ti.present(past, "hierarchical")
        roles.mark_rules(example.n_input, linear, hierarchical)
        main = parse("ti", past).main_verb
        roles.mark_critical(example.n_input + main, linear[main], hierarchical[main], list(PRESENT[past[main]]))
        return roles


TASK = TenseInflection()
