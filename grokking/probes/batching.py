"""Length-sorted batches of `[SOS] + ids` sequences for probe forward passes, bounded in attention memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# Rows x length^2 cap per forward pass (attention maps / masks grow with the square of the length).
ATTENTION_CELLS = 256 * 64 * 64


def rows_per_pass(batch_size: int, length: int) -> int:
    """At most `batch_size` rows, fewer for long sequences so one pass's attention stays bounded."""
    return max(1, min(batch_size, ATTENTION_CELLS // (length * length)))


def length_sorted_batches(sequences: Sequence[Sequence[int]], batch_size: int) -> Iterator[list[int]]:
    """Indices into `sequences`, shortest first, in batches that limit padding and attention memory."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and stop - start < rows_per_pass(batch_size, len(sequences[order[stop]])):
            stop += 1
        yield order[start:stop]
        start = stop
