"""What every fact module shares: the parse error and the wrapper that hands it to pyinfra.

Parsers stay free of pyinfra (tested on canned output); a fact's process()
wrapped in `parsed` turns their ParseError into FactProcessError, which pyinfra
turns into a failure of that host only (any other exception would abort the run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from pyinfra.api.exceptions import FactProcessError

T = TypeVar("T")


class ParseError(ValueError):
    """Output did not look like what the command prints."""


def parsed(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn ParseError (and stray value errors) into FactProcessError for pyinfra."""

    @wraps(fn)
    def wrapper(self: Any, output: list[str]) -> T:
        try:
            return fn(self, output)
        except FactProcessError:
            raise
        except (ParseError, ValueError, KeyError, TypeError) as e:
            raise FactProcessError(f"{type(self).__name__}: cannot parse output: {e}") from e

    return wrapper


def json_object(text: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"not JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(data, dict):
        raise ParseError("JSON is not an object")
    return data


def json_list(text: str, what: str) -> list:
    """`text` parsed as a JSON list (iproute2's `-j` output): `what` names it in the error."""
    try:
        data = json.loads(text.strip() or "[]")
    except json.JSONDecodeError as e:
        raise ParseError(f"not {what} JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list):
        raise ParseError(f"not {what} JSON: expected a list")
    return data


def get(obj: dict, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """obj[key] checked against `kind`; a missing or null key gives `default` (no default: an error)."""
    if key not in obj:
        if default is ...:
            raise ParseError(f"missing key {key}")
        return default
    value = obj[key]
    if value is None and default is not ...:
        return default
    if not isinstance(value, kind):
        raise ParseError(f"{key} has type {type(value).__name__}")
    return value
