"""Run operation generators against canned facts, pyinfra's own test style.

pyinfra tests an operation by calling `op._inner(...)` with a fake host whose
facts come from test data, then comparing the yielded commands. FakeHost does
that; our own facts are given as *raw command output* and parsed by the real
fact classes, so the canned output files are exercised end to end. pyinfra's
file facts are served from an in-memory file system that FileUploadCommands
write to, so a second run sees what the first one uploaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyinfra.api import Config, FileUploadCommand, StringCommand
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts import files as file_facts
from pyinfra.facts.apt import AptSources
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import OsRelease
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from operations.facts import DefaultRouteInterface
from operations.facts.dpkg import DpkgInterrupted
from operations.owned import FileState, UnitStatus

# facts answered from the fake file system / package db / units rather than canned output
FS_FACT_MODULES = ("pyinfra.", "operations.owned", "operations.batch")

DATA = Path(__file__).parent / "data"


MISSING = object()  # the fact's program is not installed: the fact returns its default


def data(name: str) -> str:
    return (DATA / name).read_text()


class FakeState:
    """Enough of pyinfra's State for operations run outside a deploy."""

    cwd = "/"
    is_executing = False
    in_op = True
    in_deploy = True
    print_noop_info = False

    def __init__(self, diff: bool = False):
        self.config = Config()
        self.config.DIFF = diff

    def should_check_for_changes(self) -> bool:
        return True


class FakeHost:
    name = "router-a"
    print_prefix = "[router-a] "
    current_op_global_arguments = None
    in_op = True
    in_callback_op = False
    current_op_hash = None
    current_deploy_name = None
    current_deploy_kwargs = None
    current_deploy_data = None

    def __init__(self, outputs: dict | None = None, files: dict[str, bytes] | None = None,
                 os_release: dict | None = None, packages: dict | None = None,
                 apt_sources: list | None = None, units: dict | None = None):
        self.outputs: dict = {DpkgInterrupted: "journal 0\n", **(outputs or {})}  # dpkg clean unless a test says
        self.fs: dict[str, bytes] = dict(files or {})
        self.os_release = os_release or {"id": "debian", "version_codename": "bookworm"}
        self.packages = dict(packages or {})
        self.apt_sources = list(apt_sources or [])
        self.units: dict[str, dict[str, bool]] = {k: dict(v) for k, v in (units or {}).items()}
        self.modes: dict[str, int] = {}
        self.owners: dict[str, str] = {}
        self.noops: list[str] = []
        self.logs: list[str] = []
        self.data: dict = {}

    # --- host API used by operations
    def noop(self, description: str) -> None:
        self.noops.append(description)

    def log(self, message: str, log_func: Any = None) -> None:
        self.logs.append(message)
        if log_func:
            log_func(message)

    def log_styled(self, message: str, log_func: Any = None, **kwargs: Any) -> None:
        self.log(message, log_func)

    def get_temp_filename(self, *args: Any, **kwargs: Any) -> str:
        return "/tmp/_tempfile_"

    def get_fact(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        handler = getattr(self, f"_fact_{cls.__name__}", None)
        if handler is not None and cls.__module__.startswith(FS_FACT_MODULES):
            return handler(**kwargs)
        key = (cls, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key in self.outputs:
            output = self.outputs[key]
        elif cls in self.outputs:
            output = self.outputs[cls]
        else:
            raise KeyError(f"test gave no output for fact {cls.__name__} {kwargs}")
        fact = cls()
        fact.command(**kwargs)  # facts keep their arguments for process()
        if output is MISSING:
            return fact.default()
        lines = [line for line in output.splitlines()]
        if not any(line.strip() for line in lines):
            return fact.default()
        return fact.process(lines)

    # --- pyinfra facts served from the fake file system / package db
    def _fact_File(self, path: str) -> dict | None:
        if path not in self.fs:
            return None
        return {"mode": self.modes.get(path, 644), "user": "root", "group": "root", "size": len(self.fs[path])}

    def _fact_Directory(self, path: str) -> dict | None:
        prefix = path.rstrip("/") + "/"
        if any(p.startswith(prefix) for p in self.fs) or path in ("/", "/etc", "/usr", "/usr/share/keyrings",
                                                                     "/etc/sysctl.d", "/etc/systemd/system",
                                                                     "/usr/local/sbin", "/etc/apt/sources.list.d"):
            return {"mode": 755, "user": "root", "group": "root"}
        return None

    def _fact_Sha1File(self, path: str) -> str | None:
        return hashlib.sha1(self.fs[path]).hexdigest() if path in self.fs else None

    def _fact_Md5File(self, path: str) -> str | None:
        return None

    def _fact_Sha256File(self, path: str) -> str | None:
        return None

    def _fact_FileContents(self, path: str) -> list[str] | None:
        return self.fs[path].decode().splitlines() if path in self.fs else None

    def _fact_Batch(self, specs: tuple) -> list:
        """A batch is its facts, each answered as if read alone."""
        return [self.get_fact(cls, **dict(kwargs)) for cls, kwargs in specs]

    def _fact_OwnedFile(self, path: str) -> FileState | None:
        if path not in self.fs:
            return None
        return FileState(str(self.modes.get(path, 644)), self.owners.get(path, "root:root"),
                         hashlib.sha256(self.fs[path]).hexdigest())

    def _fact_UnitState(self, unit: str, on_default_route: bool = False) -> UnitStatus:
        if on_default_route:  # the template's instance for the default route's interface
            name, _, suffix = unit.partition("@")
            unit = f"{name}@{self.get_fact(DefaultRouteInterface)}{suffix}"
        u = self.units.get(unit, {})
        return UnitStatus(bool(u.get("active")), bool(u.get("enabled")))

    def _fact_OsRelease(self) -> dict:
        return self.os_release

    def _fact_DebPackages(self) -> dict:
        return self.packages

    def _fact_AptSources(self) -> list:
        """The real AptSources fact parsing the apt source files in the fake file system."""
        lines: list[str] = []
        for path in sorted(self.fs):
            if path.startswith("/etc/apt/sources.list"):
                lines += [f"##PYINFRA_FILE {path}", *self.fs[path].decode().splitlines(), ""]
        return self.apt_sources + (AptSources().process(lines) if lines else [])

    def _fact_SystemdStatus(self, services: list[str] | None = None, **_: Any) -> dict:
        return {s: self.units.get(s, {}).get("active", False) for s in services or []}

    def _fact_SystemdEnabled(self, services: list[str] | None = None, **_: Any) -> dict:
        return {s: self.units.get(s, {}).get("enabled", False) for s in services or []}

    # --- what running the commands would do to the state pyinfra's facts read
    def apply(self, commands: list) -> None:
        for c in commands:
            if isinstance(c, FileUploadCommand):
                src = c.src
                src.seek(0)
                body = src.read()
                self.fs[c.dest] = body.encode() if isinstance(body, str) else body
            elif isinstance(c, (str, StringCommand)):
                bits = command_text(c).split()
                if bits[:1] == ["chmod"] and len(bits) == 3:
                    self.modes[bits[2].strip("'")] = int(bits[1])
                if bits[:1] == ["chown"] and len(bits) == 3:
                    self.owners[bits[2].strip("'")] = bits[1]
                if bits[:1] == ["systemctl"] and len(bits) == 3 and bits[1] in ("start", "enable"):
                    unit = bits[2].strip("'")
                    self.units.setdefault(unit, {})["active" if bits[1] == "start" else "enabled"] = True


def command_text(c: Any) -> str:
    if isinstance(c, FileUploadCommand):
        return f"upload {c.dest}"
    if isinstance(c, str):
        return c
    return c.get_raw_value()


@contextmanager
def contexts(host: Any, diff: bool = False):
    state = FakeState(diff=diff)
    with ctx_state.use(state), ctx_host.use(host):
        yield state


def run_op(op: Any, host: Any, *args: Any, diff: bool = False, **kwargs: Any) -> list:
    """Collect the commands an operation yields for `host` (like pyinfra's tests/test_operations.py)."""
    with contexts(host, diff=diff):
        return list(op._inner(*args, **kwargs))


def texts(commands: list) -> list[str]:
    return [command_text(c) for c in commands]


# ---------------------------------------------------------------------------
# Real runs inside a scratch network namespace


class NetnsHost(FakeHost):
    """Facts of this project run for real inside network namespace `ns`; pyinfra facts are still fake.

    The namespace shares the machine's file system, so operations that write
    files are only run here with persist=False; their files are tested with FakeHost.
    """

    def __init__(self, ns: str, path_prefix: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.ns = ns
        self.env = dict(os.environ, PATH=f"{path_prefix}:{os.environ['PATH']}" if path_prefix else os.environ["PATH"],
                        TS_NO_LOGS_NO_SUPPORT="true")

    def sh(self, command: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns, "sh", "-c", command], input=stdin,
                              capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def get_fact(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        if cls.__module__.startswith(FS_FACT_MODULES):
            return super().get_fact(cls, *args, **kwargs)
        fact = cls()
        out = self.sh(str(fact.command(**kwargs))).stdout
        lines = out.splitlines()
        return fact.process(lines) if any(line.strip() for line in lines) else fact.default()

    def execute(self, commands: list) -> list[subprocess.CompletedProcess]:
        results = []
        for c in commands:
            assert isinstance(c, (str, StringCommand)), f"cannot run {c!r} in a netns"
            text = command_text(c)
            stdin = None
            if isinstance(c, StringCommand) and c.connector_arguments.get("_stdin") is not None:
                buf = c.connector_arguments["_stdin"]
                buf.seek(0)
                stdin = buf.read()
            results.append(self.sh(text, stdin=stdin, check=False))
        return results


def rules_in(host: NetnsHost, version: int = 4) -> list[str]:
    save = "iptables-save" if version == 4 else "ip6tables-save"
    return [line for line in host.sh(f"{save} -t mangle").stdout.splitlines() if line.startswith("-A ")]


def io_text(c: FileUploadCommand) -> str:
    c.src.seek(0)
    body = c.src.read()
    return body.decode() if isinstance(body, bytes) else body


__all__ = ["DATA", "MISSING", "FakeHost", "NetnsHost", "run_op", "texts", "data", "contexts", "io",
           "AptSources", "DebPackages", "OsRelease", "SystemdEnabled", "SystemdStatus", "file_facts", "io_text"]
