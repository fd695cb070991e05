"""Build Tailscale and Headscale from their Go modules, cached by version.

The binaries are the real programs (`go install module/cmd/x@version`), built
once per version into a cache directory shared by the lab and the tests, so a
warm run never compiles.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lab.cachelock import held
from lab.versions import HEADSCALE_VERSION, TAILSCALE_VERSION

MODULES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (module path, version, commands)
    "tailscale": ("tailscale.com", TAILSCALE_VERSION, ("tailscale", "tailscaled")),
    "headscale": ("github.com/juanfont/headscale", HEADSCALE_VERSION, ("headscale",)),
}

# Building inside the module directory leaves no module version in the binary, so stamp it
# the way Tailscale's own build does (else `tailscale version` says "1.100.0-ERR-BuildInfo").
LDFLAGS: dict[str, str] = {
    "tailscale": "-X tailscale.com/version.longStamp={v} -X tailscale.com/version.shortStamp={v}",
    "headscale": "",  # headscale reads its version from VCS build info only: nothing to stamp
}
BUILD_RECIPE = "r2"  # bump when the build flags change, so cached binaries are rebuilt


def build_id(name: str) -> str:
    """Cache name of one module's binaries: module name, version and build recipe."""
    return _build_name(name, MODULES[name][1])


def cache_dir() -> Path:
    """Where built binaries live; override with S2S_CACHE (CI keeps it between runs)."""
    base = os.environ.get("S2S_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "s2s"
    )
    return Path(base)


def go_command() -> str | None:
    """The go to build with, or None: $S2S_GO, else the one ./scripts/setup put beside the
    venv's python (.venv/bin/go: a new enough go, or Debian's switched by GOTOOLCHAIN), else
    go on PATH, else /usr/local/go/bin/go (where Go's own tarball installs it)."""
    beside_python = Path(sys.executable).parent / "go"
    for candidate in (os.environ.get("S2S_GO"), str(beside_python), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _go() -> str:
    go = go_command()
    if go is None:
        raise FileNotFoundError("no go toolchain: run ./scripts/setup (it provides .venv/bin/go) or set S2S_GO")
    return go


def binary(command: str) -> Path:
    """Path of a built command (tailscale, tailscaled or headscale), building it if needed."""
    for name, (_module, version, commands) in MODULES.items():
        if command in commands:
            return built(name, version) / command
    raise KeyError(f"unknown command {command!r}")


def is_built(name: str, version: str | None = None) -> bool:
    """Whether `name` (a key of MODULES) at `version` (default: the pinned one) is in the cache."""
    version = version or MODULES[name][1]
    target = cache_dir() / "bin" / _build_name(name, version)
    return all((target / c).exists() for c in MODULES[name][2])


def built(name: str, version: str | None = None) -> Path:
    """The directory holding `name`'s commands at `version` (default: the pinned one), built
    first if missing; tests build other versions the same way (Headscale 0.28)."""
    module, pinned, commands = MODULES[name]
    version = version or pinned
    target = cache_dir() / "bin" / _build_name(name, version)
    if not is_built(name, version):
        # two labs or test runs (other checkouts, the suite's background prebuild) may ask at
        # once: one builds, the other waits
        with held(target):
            if not is_built(name, version):
                _go_install(module, version, commands, target, LDFLAGS[name].format(v=version.lstrip("v")))
    return target


def _build_name(name: str, version: str) -> str:
    return f"{name}-{version}-{BUILD_RECIPE}"


def _go_install(module: str, version: str, commands: tuple[str, ...], target: Path, ldflags: str) -> None:
    """Build each command from the module's own source at the pinned version.

    `go install module/cmd/x@version` also asks the proxy for the module's version
    list (for deprecation notices), which the proxy refuses for some modules
    (headscale); `go mod download module@version` fetches exactly one version, and
    building inside the downloaded module uses its own go.mod and go.sum.
    """
    info = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        check=True, capture_output=True, text=True,
    )
    source = json.loads(info.stdout)["Dir"]
    tmp = target.with_name(target.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly")
    for command in commands:
        print(f"building {command} {version} from {module} (first run only, minutes)", file=sys.stderr, flush=True)
        subprocess.run(
            [_go(), "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp / command), f"./cmd/{command}"],
            cwd=source, env=env, check=True,
        )
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


if __name__ == "__main__":
    for cmd in sys.argv[1:] or ["tailscale", "tailscaled", "headscale"]:
        print(binary(cmd))
