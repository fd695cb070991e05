"""Several facts read with one command: each keeps its own command, parser and exit status.

pyinfra runs every fact as its own SSH exec and caches none, so an operation that
reads five facts pays five round trips on every run, a no-op run included. A
batch runs the facts' commands in one shell, each followed by a marker line that
carries its exit status, and hands each fact exactly the lines its own command
printed, so the parsers (and their tests on canned output) stay the same.

As with pyinfra's own `get_fact`, a fact whose command fails is an error: pyinfra
logs it under the host's name with the fact named here, and fails the host. It is
never read as "absent".
A fact that may legitimately find nothing says so in its own command (`|| true`,
or pyinfra's `requires_command`, which reads as the fact's default).

Callers name their facts: `read(prefs=(TailscalePrefs, {}), status=(...))` returns
a dict keyed by those names, so reordering a list cannot swap two values.

A deploy that runs several such operations can read all their facts up front
with `prefetch` (the router deploy does: one command per router on a no-op
run). Prefetched values stay good until an operation runs a command on that
host (pyinfra -y plans and executes operation by operation, so a later
operation may read after an earlier one changed the host); from then on
operations read afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from pyinfra_internals import commands_run, current_host, run_id

MARKER = "##S2S-FACT-END"


class FactSpec(NamedTuple):
    """One fact of a batch: its class and keyword arguments (hashable; short in pyinfra's messages)."""

    cls: type[FactBase]
    kwargs: tuple[tuple[str, Any], ...]

    def __repr__(self) -> str:
        return f"{self.cls.__name__}({', '.join(f'{k}={v!r}' for k, v in self.kwargs)})"


def _command(cls: type[FactBase], kwargs: dict[str, Any]) -> str:
    fact = cls()
    command = fact.command(**kwargs) if callable(fact.command) else fact.command
    requires = getattr(fact, "requires_command", None)
    required = requires(**kwargs) if callable(requires) else None
    if required:  # a missing program prints nothing: the fact's default, as pyinfra does
        command = f"if command -v {required} >/dev/null 2>&1; then ( {command} ); fi"
    return f"{{ {command} ; }} 2>/dev/null; echo \"{MARKER} $?\""


def _chunks(output: list[str]) -> list[tuple[list[str], int]]:
    """Each fact's lines and exit status, split at the markers."""
    chunks: list[tuple[list[str], int]] = []
    lines: list[str] = []
    for line in output:
        head, marker, status = line.rstrip().rpartition(MARKER)
        if marker and status.strip().isdigit():
            # output without a final newline (JSON from tailscale) runs into the marker
            if head.strip():
                lines.append(head)
            chunks.append((lines, int(status)))
            lines = []
        else:
            lines.append(line)
    return chunks


class Batch(FactBase[list]):
    """The results of several facts, in order, from one command."""

    def command(self, specs: tuple[FactSpec, ...]) -> str:
        self.specs = specs
        return "; ".join(_command(cls, dict(kwargs)) for cls, kwargs in specs)

    def process(self, output: list[str]) -> list:
        chunks = _chunks(output)
        if len(chunks) != len(self.specs):
            raise FactProcessError(f"Batch: expected {len(self.specs)} results, got {len(chunks)}")
        results = []
        for spec, (lines, status) in zip(map(FactSpec._make, self.specs), chunks, strict=True):
            if status != 0:
                raise FactProcessError(f"fact {spec!r} failed: its command exited {status}")
            fact = spec.cls()
            fact.command(**dict(spec.kwargs))  # facts may keep their arguments for process()
            try:
                results.append(fact.process(lines) if any(line.strip() for line in lines) else fact.default())
            except FactProcessError as e:  # name the fact, not the whole batch
                raise FactProcessError(f"fact {spec!r}: {e}") from None
        return results


Fact = tuple[type[FactBase], dict[str, Any]]


def _spec(cls: type[FactBase], kwargs: dict[str, Any]) -> FactSpec:
    return FactSpec(cls, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())))


# (run, host name) -> (commands run on the host then, facts read by prefetch)
_prefetched: dict[tuple[int, str], tuple[int, dict[FactSpec, Any]]] = {}


def _key() -> tuple[int, str]:
    return (run_id(), str(host.name))


def _ran_here() -> int:
    return commands_run(on=current_host())


def prefetch(*facts: Fact | dict[str, Fact]) -> None:
    """Read these facts in one command now, for the operations that follow on this host.

    Takes facts, or the named-facts dicts the operations' `*_facts()` helpers return."""
    specs = tuple(dict.fromkeys(_spec(cls, kwargs) for cls, kwargs in _flatten(facts)))
    ran, known = _prefetched.get(_key(), (-1, {}))
    if ran == _ran_here() and all(s in known for s in specs):
        return  # already read (deploy.py reads the routers' facts early), and nothing ran since
    results = host.get_fact(Batch, specs=specs)
    if results is not None:  # else pyinfra failed the host and named the fact
        _prefetched[_key()] = (_ran_here(), dict(zip(specs, results, strict=True)))


def _flatten(facts: Iterable[Fact | dict[str, Fact]]) -> list[Fact]:
    out: list[Fact] = []
    for item in facts:
        out.extend(item.values() if isinstance(item, dict) else [item])
    return out


def read(**facts: Fact) -> dict[str, Any]:
    """`host.get_fact` for several facts at once, keyed by the caller's names:
    read(prefs=(TailscalePrefs, {}), status=(TailscaleStatus, {})) -> {"prefs": ..., "status": ...}.

    Facts prefetched for this host cost no command while no operation has run a command since.
    """
    specs = {name: _spec(cls, kwargs) for name, (cls, kwargs) in facts.items()}
    ran, known = _prefetched.get(_key(), (-1, {}))
    if ran == _ran_here() and all(s in known for s in specs.values()):
        return {name: known[s] for name, s in specs.items()}
    results = host.get_fact(Batch, specs=tuple(specs.values()))
    if results is None:  # the read failed: pyinfra named the fact and failed the host, which runs
        return {name: s.cls().default() for name, s in specs.items()}  # nothing more; plan on defaults
    return dict(zip(specs, results, strict=True))
