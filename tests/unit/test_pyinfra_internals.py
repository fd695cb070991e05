"""The one door to pyinfra's internals: the shapes it reads are the ones pyinfra has.

pyinfra_internals reads parts of pyinfra that are not its documented API. Each test
here fails when an upgrade moves one of them, so the upgrade is fixed in one module.
"""

from __future__ import annotations

import inspect
import socket
import sys
from importlib.metadata import version
from types import SimpleNamespace

from pyinfra import context
from pyinfra.api.operation import OperationMeta
from pyinfra.api.state import State
from pyinfra.connectors.ssh import SSHConnector

import pyinfra_internals as internals


def test_checked_against_the_locked_pyinfra():
    locked = next(line.split("==")[1].split()[0] for line in open("requirements.txt")
                  if line.startswith("pyinfra=="))
    assert version("pyinfra") == locked == internals.CHECKED_AGAINST


def test_the_context_proxies_unwrap_to_the_run_and_the_host():
    assert callable(getattr(context.state, "_get_module", None))
    assert callable(getattr(context.host, "_get_module", None))


def test_operation_meta_has_what_the_summary_and_the_staleness_check_read():
    meta = OperationMeta("hash", is_change=None)
    assert meta.executed is False and not meta.is_complete()
    meta.set_complete(True, ["echo"], None)
    assert meta.executed is True and meta.is_complete() and meta.did_succeed()
    assert meta._commands == ["echo"]


def test_state_keeps_ops_per_host_and_an_op_order():
    from pyinfra.api import Config, Inventory

    run = State(Inventory((["@local"], {})), Config())
    assert isinstance(run.ops, dict) and list(run.get_op_order()) == []
    for name in ("get_op_meta", "fail_hosts"):
        assert callable(getattr(run, name))
    local = next(iter(run.inventory))
    assert list(internals.op_records(run, local)) == []


def test_the_ssh_connector_keeps_a_paramiko_client():
    assert "self.client" in inspect.getsource(SSHConnector)


def test_tcp_nodelay_on_a_direct_ssh_socket_only():
    with socket.socket() as sock:
        transport = SimpleNamespace(sock=sock)
        direct = SimpleNamespace(connector=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: transport)))
        assert internals.ssh_no_delay(direct)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    proxied = SimpleNamespace(connector=SimpleNamespace(
        client=SimpleNamespace(get_transport=lambda: SimpleNamespace(sock=object()))))
    assert not internals.ssh_no_delay(proxied)
    assert not internals.ssh_no_delay(SimpleNamespace(connector=SimpleNamespace()))  # @local, @docker ...


def test_keep_bytecode_undoes_the_cli_switch(monkeypatch):
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    internals.keep_bytecode()
    assert sys.dont_write_bytecode is False
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    internals.keep_bytecode()
    assert sys.dont_write_bytecode is True


def test_nothing_else_reaches_into_pyinfra_internals():
    import subprocess

    needles = ("_get_module()", "operation_meta", "dont_write_bytecode", "TCP_NODELAY", "gevent.sleep")
    allowed = {"pyinfra_internals.py", "tunnel/__init__.py"}
    offenders = []
    tracked = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True, check=True).stdout
    for rel in tracked.split():
        if rel.startswith(("tests/", "bench/")) or rel in allowed:
            continue
        text = open(rel).read()
        offenders += [f"{rel}: {n}" for n in needles if n in text]
    assert offenders == []
