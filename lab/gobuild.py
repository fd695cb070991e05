"""Build Tailscale and Headscale from their Go modules, cached by version.

The binaries are the real programs (`go install module/cmd/x@version`), built
once per version into a cache directory shared by the lab and the tests, so a
warm run never compiles.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lab.versions import HEADSCALE_VERSION, TAILSCALE_VERSION

MODULES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (module path, version, commands)
    "tailscale": ("tailscale.com", TAILSCALE_VERSION, ("tailscale", "tailscaled")),
    "headscale": ("github.com/juanfont/headscale", HEADSCALE_VERSION, ("headscale",)),
}


def cache_dir() -> Path:
    """Where built binaries live; override with S2S_CACHE (CI keeps it between runs)."""
    base = os.environ.get("S2S_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "s2s"
    )
    return Path(base)


def binary(command: str) -> Path:
    """Path of a built command (tailscale, tailscaled or headscale), building it if needed."""
    for name, (module, version, commands) in MODULES.items():
        if command in commands:
            target = cache_dir() / "bin" / f"{name}-{version}"
            if not all((target / c).exists() for c in commands):
                _go_install(module, version, commands, target)
            return target / command
    raise KeyError(f"unknown command {command!r}")


def _go_install(module: str, version: str, commands: tuple[str, ...], target: Path) -> None:
    """Run `go install` for each command into a temp dir, then move it in (no half builds)."""
    tmp = target.with_name(target.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(tmp), CGO_ENABLED="0")
    pkgs = [f"{module}/cmd/{c}@{version}" for c in commands]
    print(f"building {' '.join(pkgs)} (first run only, several minutes)", file=sys.stderr, flush=True)
    subprocess.run(["go", "install", *pkgs], env=env, check=True)
    tmp.rename(target) if not target.exists() else None
    if tmp.exists():
        for f in tmp.iterdir():
            f.replace(target / f.name)
        tmp.rmdir()


if __name__ == "__main__":
    for cmd in sys.argv[1:] or ["tailscale", "tailscaled", "headscale"]:
        print(binary(cmd))
