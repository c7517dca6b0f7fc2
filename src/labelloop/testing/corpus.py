"""The texts the fake teacher knows, found again in whatever text a request quotes.

A server cannot see where a client put its document, only the words it sent. The corpus
indexes every run of GRAM words of every known text; a request's text is read word by word
(lower case, split on white space) and each stretch that matches one known text is an
occurrence of it. A chunk, a cut text, or a text with a marker in its middle (a head and a tail
a few words apart) are all found, wherever the client's markup puts them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

GRAM = 4  # words per indexed run: long enough that ordinary phrases rarely match by chance
MIN_WORDS = 8  # a shorter match counts only where it is a whole text, or a text's start or end
MERGE_GAP = 3  # words between two matches of one text that still make one occurrence (a cut's marker)

Label = str | list[str]


def words(text: str) -> list[str]:
    """The words the corpus compares: lower case, split on white space."""
    return text.lower().split()


@dataclass(frozen=True)
class Occurrence:
    """A stretch of a request's words, [start, end), that quotes the known text `doc`."""

    start: int
    end: int
    doc: int
    key: str  # the quoted words joined by single spaces: what the teacher's draws depend on

    @property
    def size(self) -> int:
        return self.end - self.start


class Corpus:
    """Known texts and their gold labels, indexed by runs of GRAM words."""

    def __init__(self, gold: Mapping[str, str | Sequence[str]] | None = None):
        self.texts: list[str] = []  # each known text's words, joined by single spaces
        self.labels: list[Label] = []
        self._grams: dict[int, int | tuple[int, ...]] = {}
        self._short: dict[int, dict[int, int]] = {}  # texts under GRAM words: length -> hash -> text
        for text, label in (gold or {}).items():
            self._add(words(text), label if isinstance(label, str) else list(label))

    def __len__(self) -> int:
        return len(self.texts)

    def _add(self, ws: list[str], label: Label) -> None:
        doc = len(self.texts)
        self.texts.append(" ".join(ws))
        self.labels.append(label)
        if 0 < len(ws) < GRAM:
            self._short.setdefault(len(ws), {}).setdefault(hash(" ".join(ws)), doc)
            return
        for i in range(len(ws) - GRAM + 1):
            h = hash(" ".join(ws[i:i + GRAM]))
            have = self._grams.get(h)
            if have is None:
                self._grams[h] = doc
            elif isinstance(have, int):
                if have != doc:
                    self._grams[h] = (have, doc)
            elif doc not in have:
                self._grams[h] = (*have, doc)

    def _hits(self, ws: list[str]) -> Iterator[tuple[int, int, int]]:
        """(start, end, text) for every indexed run found in ws, in order of start."""
        for i in range(len(ws)):
            for n, table in self._short.items():
                doc = table.get(hash(" ".join(ws[i:i + n]))) if i + n <= len(ws) else None
                if doc is not None:
                    yield i, i + n, doc
            if i + GRAM <= len(ws):
                have = self._grams.get(hash(" ".join(ws[i:i + GRAM])))
                for doc in (() if have is None else (have,) if isinstance(have, int) else have):
                    yield i, i + GRAM, doc

    def occurrences(self, text: str, *, strict: bool = True) -> list[Occurrence]:
        """The known texts the text quotes, in order, none overlapping another.

        Where two known texts match the same words (a shared phrase), the longer match wins. strict
        drops matches too short to tell a quote from a chance phrase (see MIN_WORDS).
        """
        ws = words(text)
        spans: dict[int, list[list[int]]] = {}
        for start, end, doc in self._hits(ws):
            runs = spans.setdefault(doc, [])
            if runs and start <= runs[-1][1] + MERGE_GAP:
                runs[-1][1] = max(runs[-1][1], end)
            else:
                runs.append([start, end])
        found = [Occurrence(s, e, doc, " ".join(ws[s:e])) for doc, runs in spans.items() for s, e in runs]
        if strict:
            found = [o for o in found if o.size >= MIN_WORDS or self._at_edge(o)]
        kept: list[Occurrence] = []
        for o in sorted(found, key=lambda o: (-o.size, o.doc)):
            if all(o.end <= k.start or o.start >= k.end for k in kept):
                kept.append(o)
        return sorted(kept, key=lambda o: o.start)

    def _at_edge(self, o: Occurrence) -> bool:
        """A short match that is its text's start or end (a last chunk), or the whole text."""
        text = f" {self.texts[o.doc]} "
        return text.startswith(f" {o.key} ") or text.endswith(f" {o.key} ")

    def find(self, text: str) -> Occurrence | None:
        """The known text a piece of text comes from (its longest match), or None."""
        found = self.occurrences(text, strict=False)
        return max(found, key=lambda o: (o.size, -o.doc)) if found else None

    def classes(self) -> list[str]:
        """Every class the gold labels name, sorted."""
        names: set[str] = set()
        for label in self.labels:
            names.update([label] if isinstance(label, str) else label)
        return sorted(names)
