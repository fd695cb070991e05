"""The site file's tables and keys, collected from the one declaration on the model's fields.

Each key is declared once, on the sites/model.py field it is read into (sites/declare.py).
From here `sites/load.py` takes each table's keys (an unknown key is a one-line error naming
the allowed ones), their TOML types, defaults and choices, and the README's key tables are
generated (`python -m sites --schema`); tests/unit/test_schema.py fails when the README and
the declaration disagree. Checks beyond a key's type and choices (ranges, overlaps) stay
in load.py beside the model they build.
"""

from __future__ import annotations

from collections.abc import Iterator

from sites.declare import Key, declared_keys
from sites.model import SiteModel


def _sections(section: str, declared: tuple[Key, ...]) -> Iterator[tuple[str, tuple[Key, ...]]]:
    """This table's keys, then those of every table below it (`sites.NAME` for any site's)."""
    yield section, declared
    for k in declared:
        if k.table is None:
            continue
        below = f"{section}.{k.name}".lstrip(".") + (".NAME" if k.each else "")
        yield from _sections(below, declared_keys(k.table) if isinstance(k.table, type) else k.table)


SECTIONS: dict[str, tuple[Key, ...]] = dict(_sections("", declared_keys(SiteModel)))


def keys(section: str) -> tuple[str, ...]:
    """Every key the table `section` may hold (`sites.NAME` for any site's table)."""
    return tuple(k.name for k in SECTIONS[section] if k.name)


def markdown_table(section: str) -> str:
    """The README's table of one section."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{k.name}` | {k.default} | {k.meaning} |" for k in SECTIONS[section]]
    return "\n".join(rows) + "\n"


def _marker(section: str) -> str:
    return f"<!-- schema: {section} (generated from sites/schema.py: python -m sites --schema) -->\n"


def with_tables(text: str) -> str:
    """`text` (the README) with every marked table regenerated from SECTIONS."""
    for section in SECTIONS:
        start = _marker(section)
        if start not in text:
            continue
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition("<!-- /schema -->\n")
        text = head + start + markdown_table(section) + "<!-- /schema -->\n" + tail
    return text
