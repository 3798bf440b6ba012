"""Short renderings of long lists for one-line messages.

A problem line names what is wrong, but a list of 99,991 missing slice numbers makes a
690 KB line nobody reads: every message that lists items goes through :func:`summarise`,
which keeps the first few and counts the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["LIST_LIMIT", "summarise"]

#: How many items a message lists before it counts the rest.
LIST_LIMIT: Final[int] = 10


def summarise(items: Iterable[object], *, limit: int = LIST_LIMIT, brackets: bool = True) -> str:
    """``items`` as ``[a, b, c]``, or ``[a, b, ... and N more]`` past ``limit`` items.

    Args:
        items: What to list (each shown with ``str``; strings are shown quoted as ``repr``).
        limit: Items shown before the rest are counted (at least 1).
        brackets: Enclose the list in ``[...]`` (as a Python list prints).

    Returns:
        One line of at most ``limit`` items.
    """
    shown: list[str] = []
    more = 0
    for item in items:
        if len(shown) < max(1, limit):
            shown.append(repr(item) if isinstance(item, str) else str(item))
        else:
            more += 1
    text = ", ".join(shown) + (f", ... and {more} more" if more else "")
    return f"[{text}]" if brackets else text
