"""Files and systemd units this project owns on a router, each read with one command.

pyinfra's files.put reads a file's state with three commands (stat of the file,
stat of its folder, checksum) and systemd.service with two; a no-op deploy runs
them for every owned file and unit, and every SSH round trip costs. These
helpers read the same state in one command each and yield the same changes
(upload, mode, owner; enable, start), with the file diff under --diff.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import FactBase, FileUploadCommand
from pyinfra.api.exceptions import FactProcessError
from pyinfra.facts.files import FileContents
from pyinfra.operations.util.files import generate_color_diff

from operations.facts.ethtool import DEFAULT_ROUTE_DEV


@dataclass(frozen=True)
class FileState:
    mode: str  # octal, as stat prints it ("644")
    owner: str  # "user:group"
    sha256: str


class OwnedFile(FactBase[FileState | None]):
    """Mode, owner and SHA-256 of a regular file; None when it does not exist."""

    def command(self, path: str) -> str:
        q = shlex.quote(path)
        return f"if [ -f {q} ]; then stat -c '%a %U:%G' {q} && sha256sum {q}; fi"

    def process(self, output: list[str]) -> FileState | None:
        try:
            mode, owner = output[0].split()
            digest = output[1].split()[0]
        except (IndexError, ValueError):
            raise FactProcessError(f"OwnedFile: unexpected output {output!r}") from None
        return FileState(mode, owner, digest)


@dataclass(frozen=True)
class UnitStatus:
    active: bool
    enabled: bool
    state: str = field(default="", compare=False)  # systemd's ActiveState (failed, inactive, ...), for messages


class UnitState(FactBase[UnitStatus]):
    """Whether a systemd unit is active and enabled (one `systemctl show`).

    With on_default_route, UNIT is a template (`name@.service`) instantiated for the
    interface of the IPv4 default route, resolved on the host in the same command. A host
    with no IPv4 default route (a closed lab's VM) has no such instance: inactive, disabled
    (gro.enable then skips with its warning), not a failed fact that fails the whole host.
    """

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "systemctl"

    def command(self, unit: str, on_default_route: bool = False) -> str:
        show = "systemctl show --property ActiveState --property UnitFileState"
        if on_default_route:
            name, _, suffix = unit.partition("@")
            return (f'dev={DEFAULT_ROUTE_DEV}; if [ -n "$dev" ]; then {show} "{name}@$dev{suffix}"; '
                    "else echo ActiveState=inactive; echo UnitFileState=; fi")
        return f"{show} {shlex.quote(unit)}"

    @staticmethod
    def default() -> UnitStatus:
        return UnitStatus(False, False)

    def process(self, output: list[str]) -> UnitStatus:
        props = dict(line.split("=", 1) for line in output if "=" in line)
        if "ActiveState" not in props:
            raise FactProcessError(f"UnitState: unexpected output {output!r}")
        return UnitStatus(props["ActiveState"] == "active",
                          props.get("UnitFileState") in ("enabled", "enabled-runtime", "static", "alias"),
                          props["ActiveState"])


_READ = object()


def put(dest: str, content: str | bytes, mode: str = "644", owner: str = "root:root",
        current: FileState | None | object = _READ) -> Iterator[Any]:
    """Commands that make `dest` hold exactly `content` with `mode` and `owner` (none if it does).

    `current` is the OwnedFile fact when the caller already read it (in a batch).
    """
    data = content.encode() if isinstance(content, str) else content
    if current is _READ:
        current = host.get_fact(OwnedFile, path=dest)
    assert current is None or isinstance(current, FileState)
    q = shlex.quote(dest)
    if current is None or current.sha256 != hashlib.sha256(data).hexdigest():
        if state.config.DIFF:
            _show_diff(dest, data, exists=current is not None)
        if current is None:
            yield f"mkdir -p {shlex.quote(posixpath.dirname(dest))}"
        yield FileUploadCommand(io.BytesIO(data), dest, remote_temp_filename=host.get_temp_filename(dest))
        yield f"chmod {mode} {q}"
        yield f"chown {owner} {q}"
        return
    if current.mode != mode.lstrip("0") and current.mode != mode:
        yield f"chmod {mode} {q}"
    if current.owner != owner:
        yield f"chown {owner} {q}"


def _show_diff(dest: str, data: bytes, exists: bool) -> None:
    before = host.get_fact(FileContents, path=dest) if exists else None
    host.log(f"Will {'modify' if exists else 'create'} {dest}", logger.info)
    old = [line + "\n" for line in before or []]
    new = data.decode(errors="replace").splitlines(keepends=True)
    for line in generate_color_diff(old, new):
        logger.info("  %s", line)
    logger.info("")


def unit_running(unit: str, status: UnitStatus | None = None) -> Iterator[str]:
    """Commands that leave a systemd unit enabled and running (none if it is); `status` is the
    UnitState fact when the caller already read it."""
    if status is None:
        status = host.get_fact(UnitState, unit=unit)
    q = shlex.quote(unit)
    if not status.active:
        yield f"systemctl start {q}"
    if not status.enabled:
        yield f"systemctl enable {q}"
