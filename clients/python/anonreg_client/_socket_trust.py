"""Who may have put the socket where it is (docs/OPERATIONS.md §Socket), checked before anything
is sent, as the ``anonreg`` CLI and the daemon check it.

Whoever can write a directory on the way to the socket can rename the socket and listen in its
place, and read the patient codes clinics send. So the socket's directory and every directory
above it must be owned by a trusted uid and writable by nobody else (unless sticky, as /tmp is),
the socket must be owned by a trusted uid, and the process listening on it (``SO_PEERCRED``)
must run as one. Trusted: root, this process's user, the system user ``anonreg`` if it exists,
and ``$ANONREG_DAEMON_USER`` (a user name or uid).
"""
from __future__ import annotations

import os
import pwd
import socket
import stat
import struct
from typing import List, Optional, Set

from .errors import UntrustedSocket


def trusted_uids() -> Set[int]:
    trusted = {0, os.geteuid()}
    for name in ("anonreg", os.environ.get("ANONREG_DAEMON_USER") or ""):
        if not name:
            continue
        if name.isdigit():
            trusted.add(int(name))
            continue
        try:
            trusted.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            pass
    return trusted


def _ancestors(directory: str) -> List[str]:
    parts = [p for p in directory.split("/") if p]
    out = []
    while parts:
        out.append("/" + "/".join(parts))
        parts.pop()
    out.append("/")
    return out


def _problem(path: str, trusted: Set[int]) -> Optional[str]:
    st = os.lstat(path)
    if st.st_uid not in trusted:
        return f"{path} is owned by uid {st.st_uid}, which is not root, this user or the daemon's user"
    if stat.S_ISLNK(st.st_mode):
        return None
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        who = "others" if st.st_mode & 0o002 else f"its group (gid {st.st_gid})"
        return f"{path} has mode {stat.S_IMODE(st.st_mode):o} and is writable by {who}"
    return None


def check_path(socket_path: str) -> None:
    """Raises :class:`UntrustedSocket` for a socket someone untrusted could have placed. A
    missing socket is left to ``connect`` to report."""
    trusted = trusted_uids()
    directory = os.path.dirname(os.path.abspath(socket_path)) or "/"
    chains = [_ancestors(directory)]
    real = _ancestors(os.path.realpath(directory))
    if real != chains[0]:
        chains.append(real)
    try:
        for chain in chains:
            for path in chain:
                problem = _problem(path, trusted)
                if problem:
                    raise UntrustedSocket(
                        f"refusing to send anything to {socket_path}: {problem}, so someone else could have put their "
                        "own socket there; ask the registry's admin to fix it (docs/OPERATIONS.md §Socket)")
        st = os.lstat(socket_path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise UntrustedSocket(f"refusing to send anything to {socket_path}: it is not a socket")
    if st.st_uid not in trusted:
        raise UntrustedSocket(
            f"refusing to send anything to {socket_path}: the socket is owned by uid {st.st_uid}, which is not root, "
            "this user or the daemon's user (set ANONREG_DAEMON_USER for a daemon run as another user)")


def check_listener(sock: socket.socket, socket_path: str) -> None:
    """Raises :class:`UntrustedSocket` when the listening process runs as an untrusted uid."""
    # struct ucred: pid_t pid, uid_t uid, gid_t gid.
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII"))
    _pid, uid, _gid = struct.unpack("iII", raw)
    if uid not in trusted_uids():
        raise UntrustedSocket(
            f"refusing to send anything to {socket_path}: the process listening on it runs as uid {uid}, which is not "
            "root, this user or the daemon's user")
