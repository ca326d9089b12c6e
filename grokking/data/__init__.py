"""Datasets of the three tasks (docs/data.md): generation, caching, original file formats and language helpers."""

from grokking.data.dyck import closing_brackets, is_closing
from grokking.data.examples import Example, TaskData
from grokking.data.formats import export_original, read_original
from grokking.data.lexicon import AUXILIARIES, pos_tag
from grokking.data.qf import question
from grokking.data.store import load_task_data
from grokking.data.ti import present
from grokking.data.trees import gold_tree
from grokking.data.vocab import Vocab

__all__ = [
    "AUXILIARIES", "Example", "TaskData", "Vocab", "closing_brackets", "export_original", "gold_tree",
    "is_closing", "load_task_data", "pos_tag", "present", "question", "read_original",
]
