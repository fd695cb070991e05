"""How a model field declares the site-file key(s) it is read from: once, beside its type and default.

sites/model.py's dataclass fields carry a `Key` in their metadata (`key(...)`, or `keys(...)`
when one field is read from several keys); sites/schema.py collects them into the tables'
key lists that sites/load.py validates against and the README's tables are generated from.
A key's TOML type, its default and the table it holds come from the field's own type and
default unless the key says otherwise.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

METADATA = "site_file"  # the metadata entry of a field read from the site file
REQUIRED = "required"


@dataclass(frozen=True)
class Key:
    """One key of a site-file table: its name, what it means, its default, what it may hold."""

    name: str | None  # None: the field's own name
    meaning: str  # the README's "meaning" column
    shown: str | None = None  # the README's "default" column; None: from `required` and `value`
    required: bool = False  # always required (keys required only in some cases are checked by sites.load)
    kind: tuple[type, ...] | None = None  # the TOML value types it takes; None: from the field's type
    choices: tuple[str, ...] | None = None  # the only values it takes
    table: type | tuple[Key, ...] | None = None  # the keys of the table (or tables) it holds
    each: bool = False  # a table of named tables, `[sites.NAME]`
    value: Any = None  # what an absent key reads as; for a field's own key, the field's default

    @property
    def default(self) -> str:
        """The README's "default" column."""
        if self.shown is not None:
            return self.shown
        if self.required:
            return REQUIRED
        if isinstance(self.value, bool):
            return f"`{str(self.value).lower()}`"
        if isinstance(self.value, (str, int)):
            return f"`{self.value}`"
        if self.value == ():
            return "`[]`"
        return ""


def key(meaning: str, shown: str | None = None, *, default: Any = MISSING, default_factory: Any = MISSING,
        required: bool = False, kind: tuple[type, ...] | None = None,
        choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field read from the site-file key of its own name."""
    declared = Key(None, meaning, shown, required=required, kind=kind, choices=choices)
    return field(default=default, default_factory=default_factory, metadata={METADATA: (declared,)})


def keys(*declared: Key, default: Any = MISSING) -> Any:
    """A dataclass field read from several site-file keys (a site's single router or its HA routers)."""
    return field(default=default, metadata={METADATA: declared})


def declared_keys(cls: type) -> tuple[Key, ...]:
    """Every site-file key the dataclass `cls` declares, in field order, with its type and default filled in."""
    hints = get_type_hints(cls)
    return tuple(_bound(k, f, hints[f.name]) for f in fields(cls) for k in f.metadata.get(METADATA, ()))


def _bound(declared: Key, of: Field, hint: Any) -> Key:
    if declared.name not in (None, of.name):  # a key of its own (the field is built from several)
        return replace(declared, kind=declared.kind or (str,))
    kind, table, each = _toml_shape(hint)
    return replace(declared, name=of.name, kind=declared.kind or kind, table=table, each=each,
                   value=None if of.default is MISSING else of.default)


def _toml_shape(hint: Any) -> tuple[tuple[type, ...], type | None, bool]:
    """A field type's TOML value type, the dataclass of the table(s) it holds, whether it is named tables."""
    if get_origin(hint) in (Union, UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    origin, args = get_origin(hint), get_args(hint)
    if origin is tuple:
        return (list,), args[0] if is_dataclass(args[0]) else None, False
    if origin is dict:
        return (dict,), args[1] if is_dataclass(args[1]) else None, True
    if is_dataclass(hint):
        return (dict,), hint, False
    if hint in (bool, int):
        return (hint,), None, False
    return (str,), None, False  # text, paths, addresses and prefixes are TOML strings
