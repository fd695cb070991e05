"""Fixtures: real kea-dhcp4 + kea-ctrl-agent per site, a site file pointing at them.

Every test using `kea_factory` runs once per Kea release (2.2, 2.6, 3.0: Debian's
packages in cached debootstrap roots); S2S_KEA_RELEASES="2.2 3.0" narrows that.
Reusable by other areas: `kea_factory(**SITE_A)` starts one site's Kea (server and
client namespaces, CA on 127.0.0.1 with basic auth) and stops it at teardown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kea.harness import DEBIAN_PACKAGES, SITE_A, SITE_B, KeaInstance, missing_prerequisites
from tests.kea.roots import BY_NAME, RELEASES, Release
from tests.support import need

SELECTED = os.environ.get("S2S_KEA_RELEASES", "").split() or [r.name for r in RELEASES]

ROUTERS = {"a": "192.0.2.2", "b": "172.16.100.2"}


@pytest.fixture(scope="session")
def real_kea() -> None:
    """Skip with the reason when Kea/dhclient/root are missing (a failure under CI:
    tests/conftest.py)."""
    missing = missing_prerequisites()
    need(f"real Kea tests need {', '.join(missing)} (apt-get install {' '.join(DEBIAN_PACKAGES)}; "
         "run as root)" if missing else None)


# (release, api): the Control Agent on every release, kea-dhcp4's own HTTP socket on 3.0
# (the only way into Kea 3.2, which has no CA).
TARGETS = [(name, "control-agent") for name in SELECTED]
TARGETS += [(name, "direct") for name in SELECTED if BY_NAME[name].name >= "3.0"]


@pytest.fixture(params=SELECTED, ids=lambda name: f"kea{name}")
def kea_release(request: pytest.FixtureRequest) -> Release:
    """The Kea release a test runs against (its root is built on first use)."""
    return BY_NAME[request.param]


@pytest.fixture(params=TARGETS, ids=lambda t: f"kea{t[0]}" + ("-direct" if t[1] == "direct" else ""))
def kea_target(request: pytest.FixtureRequest) -> tuple[Release, str]:
    """A release and the API the push uses on it."""
    name, api = request.param
    return BY_NAME[name], api


@pytest.fixture
def kea_factory(real_kea: None, kea_target: tuple[Release, str],
                tmp_path: Path) -> Iterator[Callable[..., KeaInstance]]:
    started: list[KeaInstance] = []

    def make(**spec: object) -> KeaInstance:
        tag = str(spec["tag"])
        spec.setdefault("release", kea_target[0])
        spec.setdefault("api", kea_target[1])
        instance = KeaInstance(workdir=tmp_path / f"kea-{tag}", **spec)  # type: ignore[arg-type]
        started.append(instance)
        return instance.start()

    try:
        yield make
    finally:
        for instance in reversed(started):
            instance.close()


def shared_network_config(instance: KeaInstance) -> dict:
    """Site b's Kea keeps its LAN subnet inside a shared network (the push must find it there)."""
    config = instance.default_config()
    dhcp4 = config["Dhcp4"]
    lan = dhcp4.pop("subnet4")[0]
    dhcp4["shared-networks"] = [{"name": "lan-b", "subnet4": [lan]}]
    # An unrelated subnet at top level, which must survive untouched.
    dhcp4["subnet4"] = [{"id": 99, "subnet": "198.18.0.0/24",
                         "pools": [{"pool": "198.18.0.10 - 198.18.0.20"}],
                         "option-data": [{"name": "routers", "data": "198.18.0.1"}]}]
    return config


@pytest.fixture
def two_sites(kea_factory: Callable[..., KeaInstance]) -> dict[str, KeaInstance]:
    """The lab's two sites, each with its own kea-dhcp4 and CA (site b: shared network)."""
    return {"a": kea_factory(**SITE_A),
            "b": kea_factory(**SITE_B, make_config=shared_network_config)}


def write_site_file(path: Path, keas: dict[str, KeaInstance], *,
                    password_files: dict[str, Path] | None = None, extra: str = "") -> Path:
    """A site file for the lab's two sites whose kea tables point at the running CAs. Site a
    names its subnet_id; site b leaves it out, so the push finds b's subnet by prefix."""
    blocks = []
    for name, kea in keas.items():
        pw = (password_files or {}).get(name, kea.password_path)
        subnet_id = f"subnet_id = {kea.subnet_id}\n" if name == "a" else ""
        blocks.append(
            f'[sites.{name}]\nsubnet = "{kea.subnet}"\nrouter = "{ROUTERS[name]}"\n'
            f'gateway = "{kea.gateway}"\n'
            f'[sites.{name}.kea]\nurl = "{kea.ca_url}"\nuser = "{kea.user}"\n'
            f'password_file = "{pw}"\napi = "{kea.api}"\n{subnet_id}')
    path.write_text("\n".join(blocks) + extra)
    return path


@pytest.fixture
def site_file(two_sites: dict[str, KeaInstance], tmp_path: Path) -> Path:
    return write_site_file(tmp_path / "sites.toml", two_sites)
