"""Aligned text tables, as the commands print them (compare, tune's trials, reports)."""

from __future__ import annotations


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, the header first, no trailing spaces."""
    lines = [header, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
