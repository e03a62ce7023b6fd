"""What a read of a file reports: files that cannot be used at all, and rows that were skipped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

EXAMPLES_PER_REASON = 5


class InputFileError(Exception):
    """A file that cannot be used at all (missing, empty, required column absent)."""


@dataclass(frozen=True)
class RowProblem:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class RowProblems:
    """Skipped rows: how many per reason, and the first few of each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: list[RowProblem] = field(default_factory=list)
    # The reason of each example without its per-row detail (``examples[i]`` was recorded under ``example_reasons[i]``).
    example_reasons: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, file: str, reason: str, lines: np.ndarray, details: list[str] | None = None) -> None:
        """Record ``len(lines)`` rows skipped for ``reason`` (details: per-row text)."""
        if len(lines) == 0:
            return
        shown = self.counts[reason]
        self.counts[reason] += len(lines)
        for i in range(max(0, min(len(lines), EXAMPLES_PER_REASON - shown))):
            text = reason if details is None else f"{reason}: {details[i]}"
            self.examples.append(RowProblem(file, int(lines[i]), text))
            self.example_reasons.append(reason)

    def reorder_examples(self, key: Callable[[RowProblem, str], tuple[int, ...]]) -> None:
        """Sort the examples (stably) by ``key(example, its reason)``; counts are unchanged."""
        order = sorted(range(len(self.examples)), key=lambda i: key(self.examples[i], self.example_reasons[i]))
        self.examples = [self.examples[i] for i in order]
        self.example_reasons = [self.example_reasons[i] for i in order]

    def summary_lines(self) -> list[str]:
        lines = [f"{count} row(s) skipped: {reason}" for reason, count in sorted(self.counts.items())]
        lines += [f"  e.g. {example}" for example in self.examples]
        return lines
