"""Remote clinics over OpenSSH's Unix-socket forwarding, end to end (docs/OPERATIONS.md §Remote
clinics): Debian's sshd on a free loopback port with its own host key and config, which includes
the shipped drop-in ssh/anonreg-remote-clinics.conf; clinic accounts made by
`anonreg clinics add --ssh-account`; the clinic side run as `ssh -N -L local.sock:registry.sock`.

Needs root (it creates and removes system accounts and groups, and runs sshd) and
/usr/sbin/sshd (scripts/setup.sh installs openssh-server).
"""
from __future__ import annotations

import grp
import json
import os
import pathlib
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import List, Optional

import pytest

from anonreg_client import Client, errors

from conftest import REPO, Daemon, anonreg

SSHD = "/usr/sbin/sshd"
DROP_IN = REPO / "ssh" / "anonreg-remote-clinics.conf"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SSHD),
                                reason="needs root and openssh-server (scripts/setup.sh installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Registry:
    """The registry host: groups, anonregd (socket group = the clinic group), sshd."""

    def __init__(self, max_sessions: Optional[int] = None) -> None:
        sfx = secrets.token_hex(3)
        self.prefix = f"anrg{sfx}"
        self.socket_group = f"{self.prefix}c"
        self.ssh_group = f"{self.prefix}r"
        self.accounts: List[str] = []
        self.processes: List[subprocess.Popen] = []
        # Under /run (root, 0755): sshd's StrictModes refuses key files below a world-writable /tmp.
        self.base = tempfile.mkdtemp(prefix="anonreg-ssh-test.", dir="/run")
        os.chmod(self.base, 0o755)
        for group in (self.socket_group, self.ssh_group):
            subprocess.run(["groupadd", "--system", group], check=True)
        self.gid = grp.getgrnam(self.socket_group).gr_gid
        self.keys_dir = os.path.join(self.base, "authorized_keys")
        sock_dir = os.path.join(self.base, "run")
        os.mkdir(sock_dir)
        os.chown(sock_dir, 0, self.gid)
        os.chmod(sock_dir, 0o750)
        self.registry_socket = os.path.join(sock_dir, "anonreg.sock")
        self.daemon = Daemon(base=self.base, configure=lambda text: re.sub(
            r'^socket = ".*"$', f'socket = "{self.registry_socket}"', text, count=1, flags=re.M))
        self.config = self.daemon.config
        self.port = free_port()
        self.max_sessions = max_sessions

    # -- accounts --------------------------------------------------------------------------

    def keypair(self, name: str) -> str:
        path = os.path.join(self.base, f"{name}-key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@clinic", "-f", path], check=True)
        return path

    def add_clinic(self, clinic: str) -> tuple[str, str, subprocess.CompletedProcess]:
        account = f"{self.prefix}-{clinic}"
        key = self.keypair(clinic)
        self.accounts.append(account)
        out = anonreg("clinics", "add", clinic, "--config", self.config, "--ssh-account", account, "--ssh-key", key + ".pub",
                      "--ssh-host", "127.0.0.1", "--authorized-keys-dir", self.keys_dir,
                      "--socket-group", self.socket_group, "--ssh-group", self.ssh_group)
        return account, key, out

    def add_stranger(self) -> tuple[str, str]:
        """An account sshd lets forward (same groups) that is in no clinic table."""
        account = f"{self.prefix}-x"
        key = self.keypair("stranger")
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        "--password", "*", "--groups", f"{self.socket_group},{self.ssh_group}", account], check=True)
        self.accounts.append(account)
        pathlib.Path(self.keys_dir, account).write_text(
            "restrict,port-forwarding,command=\"/usr/sbin/nologin\" " + pathlib.Path(key + ".pub").read_text())
        return account, key

    # -- servers ---------------------------------------------------------------------------

    def start(self) -> None:
        # uid 0 (the config's admin and clinic local), primary group = the socket group, so the
        # socket is root:<socket group> 0660, as anonreg-clinic is on an installed host.
        self.daemon.start(launcher=["setpriv", f"--regid={self.gid}", "--clear-groups", "--"])
        self.host_key = os.path.join(self.base, "host_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key], check=True)
        drop_in = DROP_IN.read_text().replace("Match Group anonreg-remote", f"Match Group {self.ssh_group}").replace(
            "/etc/anonreg/ssh/authorized_keys/%u", f"{self.keys_dir}/%u").replace(
            "PermitOpen [/run/anonreg/anonreg.sock]:*", f"PermitOpen [{self.registry_socket}]:*")
        assert drop_in.count(self.registry_socket) == 1 and self.keys_dir in drop_in
        if self.max_sessions is not None:
            drop_in = drop_in.replace("MaxSessions 0", f"MaxSessions {self.max_sessions}")
        pathlib.Path(self.base, "anonreg-remote-clinics.conf").write_text(drop_in)
        self.sshd_config = os.path.join(self.base, "sshd_config")
        # The drop-in comes first, as Debian's sshd_config includes sshd_config.d/*.conf at its
        # top; the permissive lines after it must not loosen the Match block (first value wins).
        pathlib.Path(self.sshd_config).write_text(f"""Include {self.base}/anonreg-remote-clinics.conf
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.base}/sshd.pid
UsePAM no
StrictModes yes
LogLevel DEBUG1
AuthorizedKeysFile none
AllowTcpForwarding yes
AllowAgentForwarding yes
X11Forwarding yes
PermitTTY yes
""")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        check = subprocess.run([SSHD, "-t", "-f", self.sshd_config], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.sshd_log = open(os.path.join(self.base, "sshd.log"), "w+")
        self.sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", self.sshd_config], stderr=self.sshd_log, stdout=self.sshd_log)
        self.processes.append(self.sshd)

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_for(listening, "sshd to listen")
        host_pub = pathlib.Path(self.host_key + ".pub").read_text().split()
        self.known_hosts = os.path.join(self.base, "known_hosts")
        pathlib.Path(self.known_hosts).write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")

    def effective(self, account: str) -> str:
        return subprocess.run([SSHD, "-T", "-f", self.sshd_config, "-C", f"user={account},host=clinic,addr=127.0.0.1"],
                              capture_output=True, text=True, check=True).stdout

    def sshd_text(self) -> str:
        self.sshd_log.flush()
        return pathlib.Path(self.sshd_log.name).read_text()

    # -- the clinic side -------------------------------------------------------------------

    def ssh_args(self, account: str, key: str, *options: str, command: List[str] = ()) -> List[str]:
        return ["ssh", "-F", "none", "-p", str(self.port), "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=10", *options, f"{account}@127.0.0.1", *command]

    def forward(self, account: str, key: str) -> str:
        """`ssh -N -L` as `anonreg clinics add` prints it; returns the local socket."""
        local = os.path.join(self.base, f"{account}.sock")
        process = subprocess.Popen(self.ssh_args(account, key, "-N", "-o", "ExitOnForwardFailure=yes",
                                                 "-o", "StreamLocalBindUnlink=yes", "-L", f"{local}:{self.registry_socket}"),
                                   stderr=subprocess.PIPE, text=True)
        self.processes.append(process)

        def up() -> bool:
            assert process.poll() is None, f"ssh -L exited {process.returncode}: {process.stderr.read()}"
            return os.path.exists(local)
        wait_for(up, f"the forward of {account}")
        return local

    def run_ssh(self, account: str, key: str, *options: str, command: List[str] = (), timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(self.ssh_args(account, key, *options, command=command), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.daemon.stop()
        for account in self.accounts:
            subprocess.run(["userdel", account], capture_output=True)
        for group in (self.socket_group, self.ssh_group):
            subprocess.run(["groupdel", group], capture_output=True)
        if getattr(self, "sshd_log", None):
            self.sshd_log.close()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def registry():
    r = Registry()
    yield r
    r.close()


def test_clinics_add_makes_a_locked_down_account_and_prints_the_clinic_command(registry):
    account, key, out = registry.add_clinic("north")
    entry = pwd.getpwnam(account)
    assert entry.pw_shell == "/usr/sbin/nologin" and entry.pw_dir == "/nonexistent"
    groups = {g.gr_name for g in grp.getgrall() if account in g.gr_mem}
    assert groups == {registry.socket_group, registry.ssh_group}
    key_file = pathlib.Path(registry.keys_dir, account)
    assert key_file.stat().st_uid == 0 and oct(key_file.stat().st_mode & 0o777) == "0o644"
    assert key_file.read_text().startswith('restrict,port-forwarding,command="/usr/sbin/nologin" ssh-ed25519 ')
    config = pathlib.Path(registry.config).read_text()
    assert f"[clinics.north]\nuids = [{entry.pw_uid}]\ngids = []" in config
    assert (f"-L /run/anonreg-clinic/anonreg.sock:{registry.registry_socket} {account}@127.0.0.1") in out.stdout
    # An existing account is never turned into a clinic; a bad key file is refused first.
    again = anonreg("clinics", "add", "south", "--config", registry.config, "--ssh-account", account, "--ssh-key", key + ".pub",
                    "--authorized-keys-dir", registry.keys_dir, "--socket-group", registry.socket_group,
                    "--ssh-group", registry.ssh_group, check=False)
    assert again.returncode == 3 and "exists already" in again.stderr
    private = anonreg("clinics", "add", "south", "--config", registry.config, "--ssh-account", f"{registry.prefix}-s",
                      "--ssh-key", key, "--authorized-keys-dir", registry.keys_dir, check=False)
    assert private.returncode == 2
    with pytest.raises(KeyError):
        pwd.getpwnam(f"{registry.prefix}-s")
    assert "[clinics.south]" not in pathlib.Path(registry.config).read_text()


def test_remote_clinics_over_ssh(registry):
    north, north_key, _ = registry.add_clinic("north")
    south, south_key, _ = registry.add_clinic("south")
    stranger, stranger_key = registry.add_stranger()
    registry.start()
    effective = registry.effective(north)
    for line in ["allowstreamlocalforwarding local", "allowtcpforwarding local", "allowagentforwarding no", "maxsessions 0",
                 "permittty no", "x11forwarding no", "forcecommand /usr/sbin/nologin", "permitlisten none",
                 f"permitopen [{registry.registry_socket}]:*"]:
        assert line in effective.splitlines(), line

    # North forwards the socket, enrols and records a check-up with the CLI, as the clinic.
    north_sock = registry.forward(north, north_key)
    enrol = anonreg("enrol", "--socket", north_sock, "--category", "dependence", "--enrolled-on", "2026-01-10",
                    "--consent-form", "F-SSH-1", "--json")
    case = json.loads(enrol.stdout)["case"]
    anonreg("checkup", case, "--socket", north_sock, "--on", "2026-02-01", "--outcome", "remission", "--treatment", "methadone")
    status = Client(north_sock).status(case)
    assert status.monitoring.last_checkup.isoformat() == "2026-02-01"
    actors = {(e["actor"], e["action"]) for e in registry.daemon.audit()}
    assert ("clinic north", "enrol") in actors and ("clinic north", "add-checkup") in actors

    # South (another account) gets 404 for north's case, as it would locally.
    south_sock = registry.forward(south, south_key)
    refused = anonreg("status", case, "--socket", south_sock, check=False)
    assert refused.returncode == 1 and "[case_not_found, HTTP 404]" in refused.stderr
    with pytest.raises(errors.CaseNotFound):
        Client(south_sock).checkups(case)

    # An account sshd lets forward, but that is in no clinic table: 403 unknown_peer.
    stranger_sock = registry.forward(stranger, stranger_key)
    with pytest.raises(errors.UnknownPeer) as e:
        Client(stranger_sock).health()
    assert e.value.status == 403

    # No shell, no command, no subsystem, no TTY.
    for options, command in (([], []), ([], ["id"]), (["-tt"], ["id"]), (["-s"], ["sftp"])):
        r = registry.run_ssh(north, north_key, *options, command=command)
        assert r.returncode != 0, (options, command)
        assert "uid=" not in r.stdout, (options, command)
        assert "hostname" not in r.stderr and "Permission denied" not in r.stderr, r.stderr
    log = registry.sshd_text()
    assert "no more sessions" in log or "session open failed" in log or "MaxSessions" in log or "refused" in log.lower(), log[-2000:]
    # No TCP forwarding either way: a loopback service stays unreachable through the account.
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen()
    service.settimeout(0.2)
    accepted = []

    def serve():
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            try:
                conn, _ = service.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.sendall(b"SECRET")
            conn.close()
    server = threading.Thread(target=serve)
    server.start()
    local_port = free_port()
    service_port = service.getsockname()[1]
    tcp = subprocess.Popen(registry.ssh_args(north, north_key, "-N", "-L", f"127.0.0.1:{local_port}:127.0.0.1:{service_port}"),
                           stderr=subprocess.PIPE, text=True)
    registry.processes.append(tcp)
    received = b""

    def try_tcp() -> bool:
        nonlocal received
        try:
            with socket.create_connection(("127.0.0.1", local_port), timeout=2) as c:
                c.settimeout(2)
                try:
                    received += c.recv(16)
                except OSError:
                    pass
            return True
        except OSError:
            return False
    wait_for(try_tcp, "the TCP forward's local end")
    server.join()
    service.close()
    assert received == b"" and accepted == []
    remote_tcp = registry.run_ssh(north, north_key, "-N", "-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{free_port()}:127.0.0.1:22")
    assert remote_tcp.returncode != 0 and "remote port forwarding failed" in remote_tcp.stderr
    remote_unix = registry.run_ssh(north, north_key, "-N", "-o", "ExitOnForwardFailure=yes",
                                   "-R", f"{registry.base}/remote-listen.sock:{north_sock}")
    assert remote_unix.returncode != 0 and not os.path.exists(f"{registry.base}/remote-listen.sock")
    # No agent forwarding: an agent offered with -A is never reachable from the account.
    agent_sock = os.path.join(registry.base, "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", agent_sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry.processes.append(agent)
    wait_for(lambda: os.path.exists(agent_sock), "ssh-agent")
    env = dict(os.environ, SSH_AUTH_SOCK=agent_sock)
    r = subprocess.run(registry.ssh_args(north, north_key, "-A", "-o", "ForwardAgent=yes", command=["echo", "AGENT=$SSH_AUTH_SOCK"]),
                       capture_output=True, text=True, timeout=20, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "AGENT=" not in r.stdout
    assert not [p for p in pathlib.Path("/tmp").glob("ssh-*") if p.stat().st_uid == pwd.getpwnam(north).pw_uid]
    # The refusals are sshd's own (seen in its log), not failures of the test's connections.
    log = registry.sshd_text()
    assert f"to connect to host 127.0.0.1 port {service_port}, but the request was denied" in log

    # Only anonregd's socket: another socket on the host, one the account may connect to, is
    # out of reach through the forward (PermitOpen [socket path]:*).
    other_path = os.path.join(registry.base, "run", "other.sock")
    other = socket.socket(socket.AF_UNIX)
    other.bind(other_path)
    os.chmod(other_path, 0o666)
    other.listen()
    other.settimeout(2)
    assert as_account_can_connect(north, other_path), "the account itself may connect to it"
    other.accept()[0].close()
    local_other = os.path.join(registry.base, "north-other.sock")
    to_other = subprocess.Popen(registry.ssh_args(north, north_key, "-N", "-L", f"{local_other}:{other_path}"),
                                stderr=subprocess.PIPE, text=True)
    registry.processes.append(to_other)
    wait_for(lambda: os.path.exists(local_other), "the forward to another socket")
    with socket.socket(socket.AF_UNIX) as c:
        c.connect(local_other)
        c.settimeout(3)
        try:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert c.recv(16) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass
    with pytest.raises(socket.timeout):
        other.accept()
    other.close()
    assert f"connect to path {other_path}, but the request was denied" in registry.sshd_text()


def as_account_can_connect(account: str, path: str) -> bool:
    """Whether `account` (with its groups) may connect to the Unix socket at `path`."""
    code = f"import socket; s=socket.socket(socket.AF_UNIX); s.connect({path!r})"
    return subprocess.run(["setpriv", f"--reuid={account}", f"--regid={account}", "--init-groups", "/usr/bin/python3", "-c", code],
                          capture_output=True).returncode == 0


def test_with_sessions_allowed_the_other_layers_still_hold(tmp_path):
    """Defence in depth: with MaxSessions raised, a session still gets only the forced nologin,
    no PTY and no agent (AllowAgentForwarding no, PermitTTY no, ForceCommand, and the key's own
    `restrict` options)."""
    registry = Registry(max_sessions=1)
    try:
        north, north_key, _ = registry.add_clinic("north")
        registry.start()
        agent_sock = os.path.join(registry.base, "agent.sock")
        agent = subprocess.Popen(["ssh-agent", "-D", "-a", agent_sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        registry.processes.append(agent)
        wait_for(lambda: os.path.exists(agent_sock), "ssh-agent")
        env = dict(os.environ, SSH_AUTH_SOCK=agent_sock)
        r = subprocess.run(registry.ssh_args(north, north_key, "-A", command=["id; echo AGENT=$SSH_AUTH_SOCK"]),
                           capture_output=True, text=True, timeout=20, env=env, stdin=subprocess.DEVNULL)
        assert "uid=" not in r.stdout and "AGENT=" not in r.stdout
        assert "This account is currently not available" in r.stdout + r.stderr
        assert r.returncode != 0
        tty = registry.run_ssh(north, north_key, "-tt", command=["id"])
        assert "uid=" not in tty.stdout and "PTY allocation request failed" in tty.stderr
        log = registry.sshd_text()
        assert "agent forwarding disabled" in log
    finally:
        registry.close()
