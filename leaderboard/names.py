"""Display names that can be taken for an existing entry's (issue 8, item 13).

Two names collide when their skeletons are equal: compatibility forms folded (NFKD:
fullwidth and mathematical letters become plain ones), accents dropped, every character
replaced by one representative of its look-alike class (Unicode's confusables, as shipped by
confusable-homoglyphs, closed over Latin case: Cyrillic "М", Latin "M" and "m" are one class,
so are "l", "I", "i" and "1"), case folded, and everything but letters and digits removed
("MobileLLM-125M" and "Мobile LLM 125M" differ only in spacing and script). The paper's
entries are entries too, so none of them can be impersonated."""

from __future__ import annotations

import string
import unicodedata
from functools import cache

from confusable_homoglyphs.utils import load

from .models import Entry

# The data marks right-to-left characters with LEFT-TO-RIGHT MARKs; they are not part of them.
_LRM = "\u200e"


@cache
def _representatives() -> dict[str, str]:
    """Each character of a look-alike class → the class's lowest code point."""
    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        root = parent.setdefault(ch, ch)
        while root != parent[root]:
            root = parent[root]
        parent[ch] = root
        return root

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for ch, glyphs in load("confusables.json").items():
        # A character with a single look-alike is mapped to it (Cyrillic "М" → "M"); one with
        # many is a prototype, listed with everything that imitates it, and chaining through
        # those lists would merge unrelated letters and digits ("6" with "5").
        target = glyphs[0]["c"].replace(_LRM, "") if len(glyphs) == 1 else ""
        # Sequences ("rn" for "m") would need a matcher of their own: single characters carry
        # the script-mixing attacks.
        if len(ch) == 1 and len(target) == 1:
            union(ch, target)
    # Case closes the classes over Latin letters only: through other scripts' case pairs
    # the classes would chain together ("e" with "7").
    for ch in string.ascii_lowercase:
        union(ch, ch.upper())
    return {ch: find(ch) for ch in parent}


def skeleton(name: str) -> str:
    reps = _representatives()
    folded = unicodedata.normalize("NFKD", name)
    kept = (reps.get(ch, ch) for ch in folded if not unicodedata.combining(ch))
    # Casefolded after the look-alikes are replaced (Cyrillic "М" is "M", its small form is
    # not "m"), then the replacement once more for what casefolding produced.
    kept = (reps.get(ch, ch) for ch in "".join(kept).casefold())
    return "".join(ch for ch in kept if ch.isalnum())


def impersonated(name: str) -> str | None:
    """The name of an existing entry (the paper's or a measured one) that `name` can be
    taken for, or None."""
    mine = skeleton(name)
    # One query over the names only; skeletons of ~10,000 names take a few milliseconds.
    for existing in Entry.objects.values_list("name", flat=True).iterator():
        if skeleton(existing) == mine:
            return existing
    return None
