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


class FakeTransport:
    def __init__(self, sock: object) -> None:
        self.sock, self.keepalive = sock, None

    def set_keepalive(self, interval: int) -> None:
        self.keepalive = interval


def test_keepalive_on_a_direct_ssh_socket_bounds_a_dead_peer():
    from tunnel import DEAD_PEER_BOUND_S, SSH_KEEPALIVE, TCP_USER_TIMEOUT_S

    with socket.socket() as sock:
        transport = FakeTransport(sock)
        direct = SimpleNamespace(connector=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: transport)))
        assert internals.ssh_keepalive(direct)
        assert transport.keepalive == SSH_KEEPALIVE
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == TCP_USER_TIMEOUT_S * 1000
    assert DEAD_PEER_BOUND_S <= 60
    proxied = FakeTransport(object())  # a ProxyCommand: SSH keepalives only
    assert not internals.ssh_keepalive(SimpleNamespace(connector=SimpleNamespace(
        client=SimpleNamespace(get_transport=lambda: proxied))))
    assert proxied.keepalive == SSH_KEEPALIVE
    assert not internals.ssh_keepalive(SimpleNamespace(connector=SimpleNamespace()))


def test_pyinfra_reports_a_lost_connection_where_name_lost_connections_hooks_in():
    import pyinfra.api.operations as ops

    assert "log_host_command_error(host, e, timeout=timeout)" in inspect.getsource(ops._run_host_op)
    assert "recv_exit_status()" in inspect.getsource(SSHConnector.run_shell_command)


def test_a_lost_connection_is_one_line_naming_the_site_files_ssh(monkeypatch):
    import paramiko
    import pyinfra.api.operations as ops
    from pyinfra.api import util

    from operations.summary import lost_connection_line

    transport = SimpleNamespace(is_active=lambda: True)

    def pyinfra_run(self: object, *args: object, **kwargs: object) -> tuple[bool, list]:
        return False, []  # the command failed (no exit status when the connection closed)

    monkeypatch.setattr(ops, "log_host_command_error", util.log_host_command_error)  # pyinfra's own
    monkeypatch.setattr(SSHConnector, "run_shell_command", pyinfra_run)
    internals.name_lost_connections(lost_connection_line)
    internals.name_lost_connections(lost_connection_line)  # once per run, however often deploy.py loads
    logged: list[str] = []
    host = SimpleNamespace(name="a-router", data={"router_ssh": "root@a-router"},
                           log_styled=lambda text, **_: logged.append(text))
    failure = paramiko.ProxyCommandFailure("ip netns exec s2s-a socat - TCP:10.0.0.1:22", "Broken pipe")
    ops.log_host_command_error(host, failure)
    assert logged == ["ssh: connection to root@a-router lost (its ProxyCommand ended: Broken pipe); "
                      "its remaining steps did not run"]

    logged.clear()
    connector = SimpleNamespace(host=host, client=SimpleNamespace(get_transport=lambda: transport))
    assert SSHConnector.run_shell_command(connector, "false") == (False, [])
    assert logged == []  # a command that failed on a live connection is the command's failure
    transport.is_active = lambda: False
    SSHConnector.run_shell_command(connector, "sleep 60")
    assert logged == ["ssh: connection to root@a-router lost (closed while a command ran, no exit "
                      "status); its remaining steps did not run"]


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


def _both_orders(run):
    from pyinfra.api.util import get_operation_order_from_stack

    return get_operation_order_from_stack(run), internals.operation_order(run)  # one line: the same frame line


def _called_over_lines(run):
    return _both_orders(
        run,
    )


def test_operation_order_gives_pyinfras_line_numbers(monkeypatch):
    import pyinfra
    from pyinfra.api import Config, Inventory

    run = State(Inventory((["@local"], {})), Config())
    run.current_op_file_number = 3
    for is_cli in (True, False):
        monkeypatch.setattr(pyinfra, "is_cli", is_cli)
        for deploy_file in (__file__, "/nowhere/deploy.py"):  # found on the stack, or not (pyinfra's quirk)
            run.current_deploy_filename = deploy_file
            pyinfras, ours = _called_over_lines(run)
            assert ours == pyinfras
            assert len(ours) == (3 if deploy_file == __file__ else 0) + is_cli  # this file's three frames
    run.current_deploy_filename = __file__
    assert _called_over_lines(run)[1][-2:] != _both_orders(run)[1][-2:]  # the lines do tell calls apart


def test_cheaper_operation_calls_is_what_pyinfra_calls(monkeypatch):
    import pyinfra.api.arguments as arguments

    operation = sys.modules["pyinfra.api.operation"]
    monkeypatch.setattr(operation, "get_operation_order_from_stack", operation.get_operation_order_from_stack)
    monkeypatch.setattr(arguments, "all_global_arguments", arguments.all_global_arguments)
    pyinfras = arguments.all_global_arguments()
    internals.cheaper_operation_calls()
    assert operation.get_operation_order_from_stack is internals.operation_order
    assert "get_operation_order_from_stack(state)" in inspect.getsource(operation.solve_operation_consistency)
    assert arguments.all_global_arguments is internals.global_arguments
    assert "in all_global_arguments()" in inspect.getsource(arguments.pop_global_arguments)
    assert internals.global_arguments() == pyinfras and len(pyinfras) > 10
    internals.global_arguments().clear()  # a caller's list is its own
    assert internals.global_arguments() == pyinfras
