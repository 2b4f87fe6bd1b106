"""Fixtures: the real anonregd on a temporary state directory, and peers of other uids.

The binaries come from ``$ANONREG_BIN_DIR`` (``make test`` sets it), else ``.build/debug`` of
this repository. These tests need root, as the Swift end-to-end tests do: the second clinic and
the unknown peer are forked children that drop to other uids.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

import pytest

from anonreg_client import Client
from anonreg_client.errors import AnonregError

REPO = pathlib.Path(__file__).resolve().parents[3]
RFC_SEED = "a3" * 32
RFC_VECTORS = REPO / "Tests" / "RegistryCryptoTests" / "Resources" / "oprf-ristretto255-sha512.json"
PROFILE_TABLE = REPO / "docs" / "linkage-profile-v1.json"
NORTH_UID = 65534
STRANGER_UID = 65533


def bin_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ANONREG_BIN_DIR") or REPO / ".build" / "debug")


def anonreg(*args: str, stdin: Optional[str] = None, socket: Optional[str] = None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if socket:
        env["ANONREG_SOCKET"] = socket
    result = subprocess.run([str(bin_dir() / "anonreg"), *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"anonreg {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


class Daemon:
    """``anonreg init`` then ``anonregd`` on a temporary directory; stopped by ``stop``."""

    def __init__(self, init_args: List[str] = (), configure: Optional[Callable[[str], str]] = None,
                 base: Optional[str] = None) -> None:
        self.tmp = tempfile.mkdtemp(prefix="anonreg-py-", dir=base)
        os.chmod(self.tmp, 0o750)  # other uids in group 0 reach the socket, as in the Swift harness
        self.state = os.path.join(self.tmp, "state")
        anonreg("init", "--state-dir", self.state, *init_args)
        self.config = os.path.join(self.state, "anonreg.toml")
        if configure:
            text = pathlib.Path(self.config).read_text()
            pathlib.Path(self.config).write_text(configure(text))
        match = re.search(r'^socket = "([^"]+)"', pathlib.Path(self.config).read_text(), re.M)
        self.socket = match.group(1) if match else os.path.join(self.state, "anonreg.sock")
        self.process: Optional[subprocess.Popen] = None
        self.log = open(os.path.join(self.tmp, "anonregd.log"), "w+")

    def start(self, launcher: List[str] = ()) -> "Daemon":
        """Starts anonregd, through ``launcher`` if given (such as setpriv)."""
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "WATCHDOG_USEC")}
        self.process = subprocess.Popen([*launcher, str(bin_dir() / "anonregd"), "--config", self.config], stdout=self.log,
                                        stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"anonregd exited {self.process.returncode}: {self.log_text()}")
            try:
                if Client(self.socket).health().status == "ok":
                    return self
            except AnonregError:
                pass
            time.sleep(0.05)
        raise AssertionError("anonregd did not answer in time: " + self.log_text())

    def log_text(self) -> str:
        self.log.flush()
        return pathlib.Path(self.log.name).read_text()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def client(self) -> Client:
        return Client(self.socket)

    def audit(self) -> List[Dict[str, str]]:
        out = subprocess.run(["sqlite3", "-json", os.path.join(self.state, "registry.sqlite"),
                              "SELECT seq, actor, action, result FROM audit_entry ORDER BY seq"], capture_output=True, text=True, check=True)
        return json.loads(out.stdout or "[]")


def with_north(text: str) -> str:
    return text + f"\n[clinics.north]\nuids = [{NORTH_UID}]\ngids = []\n"


@pytest.fixture
def roomy_daemon():
    """A daemon whose OPRF bucket holds 1000 tokens (the default holds 100)."""
    d = Daemon(init_args=["--oprf-seed-hex", RFC_SEED, "--oprf-key-info", "test key"],
               configure=lambda text: with_north(text.replace("oprf_burst = 100", "oprf_burst = 1000"))).start()
    yield d
    d.stop()


@pytest.fixture
def daemon():
    d = Daemon(init_args=["--oprf-seed-hex", RFC_SEED, "--oprf-key-info", "test key"], configure=with_north).start()
    yield d
    d.stop()


def as_uid(uid: int, gid: int, fn: Callable[[], Any]) -> Any:
    """Runs ``fn`` in a forked child as ``uid``/``gid`` (no supplementary groups) and returns
    its JSON-able result, or re-raises its exception as (class name, code) in an AssertionError
    subclass the test can inspect."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            payload = {"ok": fn()}
        except BaseException as e:  # report everything to the parent
            payload = {"error": type(e).__name__, "code": getattr(e, "code", None), "status": getattr(e, "status", None),
                       "detail": "".join(traceback.format_exception_only(type(e), e))}
        with os.fdopen(write_end, "w") as w:
            json.dump(payload, w, default=str)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as r:
        data = r.read()
    os.waitpid(pid, 0)
    payload = json.loads(data)
    if "error" in payload:
        raise ChildError(payload["error"], payload["code"], payload["status"], payload["detail"])
    return payload["ok"]


class ChildError(AssertionError):
    def __init__(self, name: str, code: Optional[str], status: Optional[int], detail: str) -> None:
        super().__init__(detail)
        self.name, self.code, self.status = name, code, status
