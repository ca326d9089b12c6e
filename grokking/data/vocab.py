"""Token <-> id mapping: id 0 is "<pad>", then the sorted tokens of all splits; EOS and SOS come after them."""

from __future__ import annotations

from collections.abc import Iterable

from grokking.errors import DataError

PAD = "<pad>"
EOS = "<eos>"
SOS = "<sos>"


class Vocab:
    """`tokens[0]` is "<pad>"; eos = len(tokens), sos = len(tokens) + 1, size = len(tokens) + 2."""

    def __init__(self, tokens: list[str]):
        if not tokens or tokens[0] != PAD:
            raise ValueError("a vocabulary starts with <pad>")
        self.tokens = list(tokens)
        self.pad = 0
        self.eos = len(self.tokens)
        self.sos = len(self.tokens) + 1
        self.size = len(self.tokens) + 2
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_examples(cls, *splits: Iterable) -> Vocab:
        """The vocabulary of every token in the given splits of `Example`s."""
        words = {tok for split in splits for example in split for tok in example.tokens}
        return cls([PAD, *sorted(words - {PAD})])

    def id(self, token: str) -> int:
        try:
            return self._ids[token]
        except KeyError:
            raise DataError(f"token {token!r} is not in the vocabulary") from None

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.id(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        names = {self.eos: EOS, self.sos: SOS}
        return [self.tokens[i] if 0 <= i < len(self.tokens) else names[i] for i in map(int, ids)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.tokens == self.tokens
