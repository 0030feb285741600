"""Fingerprint knowledge files: ``parsers/data/*.csv``, one fact per row, each with a source.

Every table that turns wire values into device facts lives in a data file next to the code
(DESIGN: knowledge as data), and every row must say where its knowledge comes from. This is
the one reader of those files; a row without a source is a bug in the table, refused here.
"""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib import resources


@cache
def data_rows(name: str) -> tuple[dict[str, str], ...]:
    """Rows of ``parsers/data/<name>``; raises ValueError for a row without a source."""
    text = resources.files("parsers").joinpath("data", name).read_text(encoding="utf-8")
    rows = tuple(csv.DictReader(io.StringIO(text)))
    for row in rows:
        if not (row.get("source") or "").strip():
            raise ValueError(f"{name}: a row without a source")
    return rows
