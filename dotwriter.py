"""Graphviz DOT text, written in one place: the check's picture and the lab's graph.

Only what the two pictures need: quoting, attribute lists, and laying a graph out
with Graphviz's `dot` (Debian package graphviz) into an SVG file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class DotError(Exception):
    """The picture could not be drawn (one line)."""


def quote(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def attrs(**pairs: str | int | float) -> str:
    """`key="value", ...` for a node, an edge or a graph."""
    return ", ".join(f"{k}={quote(str(v))}" for k, v in pairs.items())


def render_svg(source: str, path: Path) -> None:
    """Lay the graph out with Graphviz's dot into an SVG file."""
    dot = shutil.which("dot")
    if dot is None:
        raise DotError("Graphviz's `dot` is not installed (Debian: apt-get install graphviz)")
    result = subprocess.run([dot, "-Tsvg", "-o", str(path)], input=source, text=True, capture_output=True,
                            timeout=60)
    if result.returncode != 0:
        raise DotError(f"dot failed: {result.stderr.strip()[:300]}")
