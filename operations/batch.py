"""Several facts read with one command: each keeps its own command and parser.

pyinfra runs every fact as its own SSH exec and caches none, so an operation that
reads five facts pays five round trips on every run, a no-op run included. A
batch runs the facts' commands in one shell, separated by markers, and hands
each fact exactly the lines its own command printed, so the parsers (and their
tests on canned output) stay the same.

A deploy that runs several such operations can read all their facts up front
with `prefetch` (the router deploy does: one command per router on a no-op
run). Prefetched values stay good until an operation runs a command on that
host (pyinfra -y plans and executes operation by operation, so a later
operation may read after an earlier one changed the host); from then on
operations read afresh.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pyinfra import host, state
from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

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
    required = fact.requires_command(**kwargs) if callable(getattr(fact, "requires_command", None)) else None
    if required:  # a missing program prints nothing: the fact's default, as pyinfra does
        command = f"if command -v {required} >/dev/null 2>&1; then ( {command} ); fi"
    return f"{{ {command} ; }} 2>/dev/null; echo '{MARKER}'"


class Batch(FactBase[list]):
    """The results of several facts, in order, from one command."""

    def command(self, specs: tuple[FactSpec, ...]) -> str:
        self.specs = specs
        return "; ".join(_command(cls, dict(kwargs)) for cls, kwargs in specs)

    def process(self, output: list[str]) -> list:
        chunks: list[list[str]] = [[]]
        for line in output:
            if line.rstrip().endswith(MARKER):
                # output without a final newline (JSON from tailscale) runs into the marker
                head = line.rstrip()[: -len(MARKER)]
                if head.strip():
                    chunks[-1].append(head)
                chunks.append([])
            else:
                chunks[-1].append(line)
        if len(chunks) - 1 != len(self.specs):
            raise FactProcessError(f"Batch: expected {len(self.specs)} results, got {len(chunks) - 1}")
        results = []
        for (cls, kwargs), lines in zip(self.specs, chunks):
            fact = cls()
            fact.command(**dict(kwargs))  # facts may keep their arguments for process()
            try:
                results.append(fact.process(lines) if any(line.strip() for line in lines) else fact.default())
            except FactProcessError as e:  # name the fact, not the whole batch
                raise FactProcessError(f"{FactSpec(cls, tuple(kwargs))!r}: {e}") from None
        return results


Fact = tuple[type[FactBase], dict[str, Any]]


def _spec(cls: type[FactBase], kwargs: dict[str, Any]) -> FactSpec:
    return FactSpec(cls, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())))


# (state, host name) -> (operations that had run commands on the host then, facts read by prefetch)
_prefetched: dict[tuple[int, str], tuple[int, dict[FactSpec, Any]]] = {}


def _key() -> tuple[int, str]:
    return (id(state._get_module()), str(host.name))


def _ops_that_ran_commands() -> int:
    """Operations that have run commands on this host so far (any of them may have changed a fact)."""
    ops = getattr(state._get_module(), "ops", {}).get(host._get_module(), {})
    return sum(1 for op in ops.values() if op.operation_meta.executed)


def prefetch(*facts: Fact) -> None:
    """Read these facts in one command now, for the operations that follow on this host."""
    specs = tuple(dict.fromkeys(_spec(cls, kwargs) for cls, kwargs in facts))
    ran, known = _prefetched.get(_key(), (-1, {}))
    if ran == _ops_that_ran_commands() and all(s in known for s in specs):
        return  # already read (deploy.py reads the routers' facts early), and nothing ran since
    results = host.get_fact(Batch, specs=specs)
    _prefetched[_key()] = (_ops_that_ran_commands(), dict(zip(specs, results)))


def read(*facts: Fact) -> list:
    """`host.get_fact` for several facts at once: read((FactA, {...}), (FactB, {...})) -> [a, b].

    Facts prefetched for this host cost no command while no operation has run a command since.
    """
    specs = tuple(_spec(cls, kwargs) for cls, kwargs in facts)
    ran, known = _prefetched.get(_key(), (-1, {}))
    if ran == _ops_that_ran_commands() and all(s in known for s in specs):
        return [known[s] for s in specs]
    return host.get_fact(Batch, specs=specs)
