"""Fixtures for the control-plane tests: site files, the Tailscale stand-in, a real Headscale lab."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sites import load_sites
from tests.controlplane.headscale_lab import NS_RA, NS_RB, HeadscaleLab, prerequisites
from tests.support import need

API_KEY_ENV = "S2S_CP_TEST_API_KEY"


def write_sites(path: Path, *, backend: str, url: str, key_file: Path, sites: dict[str, dict],
                extra_tailnet: str = "") -> Path:
    """A site file for the tests (the real loader validates it)."""
    lines = []
    for name, s in sites.items():
        lines.append(f"[sites.{name}]")
        for key, value in s.items():
            if isinstance(value, list):
                lines.append(f"{key} = [{', '.join(repr(v) for v in value)}]".replace("'", '"'))
            else:
                lines.append(f'{key} = "{value}"')
        lines.append("")
    lines += ["[tailnet]", f'backend = "{backend}"', f'url = "{url}"', f'api_key_file = "{key_file}"', extra_tailnet]
    path.write_text("\n".join(lines) + "\n")
    return path


SITES = {
    "a": {"subnet": "192.0.2.0/24", "router": "192.0.2.2", "ssh": "root@sc-ra"},
    "b": {"subnet": "172.16.100.0/24", "router": "172.16.100.2", "ssh": "root@sc-rb", "routes": ["10.99.0.0/16"]},
}


@pytest.fixture
def make_model(tmp_path: Path):
    """make_model(backend, url, key, sites=SITES) -> a loaded SiteModel."""

    def make(backend: str, url: str, key: str, sites: dict | None = None, extra_tailnet: str = ""):
        key_file = tmp_path / "api.key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        path = write_sites(tmp_path / "sites.toml", backend=backend, url=url, key_file=key_file,
                           sites=sites or SITES, extra_tailnet=extra_tailnet)
        return load_sites(path)

    return make


@pytest.fixture(scope="module")
def headscale_lab() -> Iterator[HeadscaleLab]:
    """Headscale + two tailscaled routers (a: 192.0.2.0/24 + 203.0.113.0/24, b: 172.16.100.0/24 + 10.99.0.0/16)."""
    reason = prerequisites()
    need(reason and f"real Headscale test skipped: {reason}")  # a failure under CI: tests/conftest.py
    from lab.gobuild import binary

    tmp = Path(tempfile.mkdtemp(prefix="s2s-cp-"))
    lab = HeadscaleLab(binary("headscale"), binary("tailscale"), binary("tailscaled"), tmp)
    try:
        lab.build_network()
        lab.start_headscale()
        authkey = lab.preauth_key()
        lab.start_router(NS_RA, ["192.0.2.0/24", "203.0.113.0/24"], authkey)
        lab.start_router(NS_RB, ["172.16.100.0/24", "10.99.0.0/16"], authkey)
        yield lab
    except Exception:
        print(lab.logs())
        raise
    finally:
        lab.stop()
