"""Each benchmark rewrites only its own section of benchmarks/RESULTS.md, between
``<!-- name:begin -->`` and ``<!-- name:end -->`` (appended at the end the first time)."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS = str(RESULTS_MD)


def write_section(name: str, text: str, path: Path = RESULTS_MD) -> None:
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: section, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + section + "\n"
    path.write_text(new)
