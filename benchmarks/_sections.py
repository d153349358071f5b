"""Each benchmark owns one section of RESULTS.md, between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""

from __future__ import annotations

import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def write_section(name: str, section: str) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md, leaving the others as they are."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
    block = f"{begin}\n{section}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(RESULTS, "w") as f:
        f.write(text)
