"""Each Kea release's own rules, found by running Debian's packages (tests/kea/roots.py).

What the deploy and the harness rely on, asserted against the real daemons so a
new release that changes a rule fails here first:
- the control socket's directory: 2.6.3 wants exactly 0750, 3.0 0750 or stricter, 2.2 anything;
- the control socket key: 2.x `control-socket` (a map), 3.0 `control-sockets` (a list; the map
  is still read);
- config-write: 2.6.3 and 3.0 write only into the config file's own directory;
- hook libraries: 2.6.3 and 3.0 load them only from the packaged hooks directory;
- Debian's packaged layout: kea-dhcp4 runs as _kea and /etc/kea/kea-dhcp4.conf is root:root
  0644, so config-write fails until the deploy's step (steps/kea_push.py) makes it group-writable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dhcp.kea.transport import ControlAgentTransport, KeaError
from steps.kea_push import DEBIAN_CONFIG, DEBIAN_KEA_GROUP, WRITABLE_MODE
from tests.kea.harness import SITE_A, HarnessError, KeaInstance, version_tuple

pytestmark = pytest.mark.integration


def start(kea_release, tmp_path: Path, **kw: Any) -> KeaInstance:
    instance = KeaInstance(workdir=tmp_path / "kea", release=kea_release, **kw, **SITE_A)
    try:
        return instance.start()
    except BaseException:
        instance.close()
        raise


def test_socket_dir_looser_than_0750(real_kea, kea_release, tmp_path):
    class LooseRunDir(KeaInstance):
        def __post_init__(self) -> None:
            super().__post_init__()
            self.rundir.chmod(0o755)

    instance = LooseRunDir(workdir=tmp_path / "kea", release=kea_release, **SITE_A)
    try:
        if version_tuple(kea_release) < (2, 6):
            instance.start()  # 2.2 does not check
            assert instance.dhcp4_running
            return
        with pytest.raises(HarnessError) as refused:
            instance.start()
        assert "socket path:/run/kea does not exist or" in str(refused.value)
    finally:
        instance.close()


def test_control_socket_key_per_release(real_kea, kea_release, tmp_path):
    def other_key(inst: KeaInstance) -> dict[str, Any]:
        config = inst.default_config()
        dhcp4 = config["Dhcp4"]
        if "control-socket" in dhcp4:
            dhcp4["control-sockets"] = [dhcp4.pop("control-socket")]
        else:
            dhcp4["control-socket"] = dhcp4.pop("control-sockets")[0]
        return config

    if version_tuple(kea_release) >= (3, 0):
        kea = start(kea_release, tmp_path, make_config=other_key)  # 3.0 still reads the 2.x map
        kea.close()
        return
    with pytest.raises(HarnessError, match='unexpected keyword "control-sockets"'):
        start(kea_release, tmp_path, make_config=other_key)


def test_config_write_only_into_the_config_directory(real_kea, kea_release, tmp_path):
    kea = start(kea_release, tmp_path)
    try:
        api = ControlAgentTransport(kea.url, kea.user, kea.password)
        assert api.command("config-write", {"filename": "/etc/kea/copy.json"})["size"] > 0
        elsewhere = {"filename": "/var/lib/kea/copy.json"}
        if version_tuple(kea_release) < (2, 6):
            assert api.command("config-write", elsewhere)["size"] > 0
            return
        with pytest.raises(KeaError, match="must be in the same directory as the config file"):
            api.command("config-write", elsewhere)
    finally:
        kea.close()


def test_packaged_layout_needs_the_deploy_step_for_config_write(real_kea, kea_release, tmp_path):
    """As Debian installs and runs it (User=_kea, /etc/kea/kea-dhcp4.conf root:root 0644)
    config-write fails; after exactly what steps/kea_push.py's config_writable sets, it works."""
    kea = start(kea_release, tmp_path, as_packaged=True)
    try:
        unit = (kea.root / "lib/systemd/system/kea-dhcp4-server.service").read_text()  # type: ignore[operator]
        assert f"ExecStart=/usr/sbin/kea-dhcp4 -c {DEBIAN_CONFIG}" in unit
        assert f"User={DEBIAN_KEA_GROUP}" in unit  # the group the deploy gives the file
        api = ControlAgentTransport(kea.url, kea.user, kea.password)
        with pytest.raises(KeaError, match=f"Unable to open file {DEBIAN_CONFIG} for writing"):
            api.command("config-write")
        _, gid = kea.kea_ids()
        os.chown(kea.config_path, 0, gid)  # files.file(group="_kea", mode=WRITABLE_MODE)
        kea.config_path.chmod(int(WRITABLE_MODE, 8))
        assert api.command("config-write")["filename"] == DEBIAN_CONFIG
        kea.restart_dhcp4()  # and Kea (as _kea) starts from what it wrote
        assert kea.running_config()["Dhcp4"]["subnet4"][0]["subnet"] == str(kea.subnet)
    finally:
        kea.close()


def test_hook_library_paths(real_kea, kea_release, tmp_path):
    """2.6.3 and 3.0 load hooks only from the packaged hooks directory (a bare name is looked
    up there); 2.2 takes any absolute path and refuses a bare name."""
    import shutil

    from tests.kea.harness import HOOKS_DIR
    from tests.kea.roots import ensure_root

    def hook_at(library: str):
        def build(inst: KeaInstance) -> dict[str, Any]:
            config = inst.default_config()
            config["Dhcp4"]["hooks-libraries"] = [{"library": library}]
            return config
        return build

    lib = "libdhcp_lease_cmds.so"
    (tmp_path / "elsewhere" / "lib").mkdir(parents=True)
    shutil.copy(ensure_root(kea_release) / HOOKS_DIR.lstrip("/") / lib, tmp_path / "elsewhere" / "lib" / lib)
    elsewhere = KeaInstance(workdir=tmp_path / "elsewhere", release=kea_release,
                            make_config=hook_at(f"/var/lib/kea/{lib}"), **SITE_A)
    bare = KeaInstance(workdir=tmp_path / "bare", release=kea_release, make_config=hook_at(lib), **SITE_A)
    for instance, allowed_on_22 in ((elsewhere, True), (bare, False)):
        try:
            allowed = allowed_on_22 if version_tuple(kea_release) < (2, 6) else instance is bare
            if allowed:
                instance.start()
                assert instance.dhcp4_running
            else:
                with pytest.raises(HarnessError, match="supported path is|failed to validate"):
                    instance.start()
        finally:
            instance.close()
