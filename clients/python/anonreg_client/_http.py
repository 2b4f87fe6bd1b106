"""HTTP/1.1 over anonregd's Unix socket with the standard library only."""
from __future__ import annotations

import http.client
import json
import socket
from typing import Any, Dict, Optional, Tuple

from ._socket_trust import check_listener, check_path
from .errors import DaemonUnreachable, ProtocolError, error_for


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` on an ``AF_UNIX`` stream socket."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        # Nothing is sent to a socket someone other than root or the daemon's user could have
        # placed (docs/OPERATIONS.md §Socket).
        check_path(self.socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
            check_listener(sock, self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def request(path: str, method: str, target: str, body: Optional[Dict[str, Any]] = None,
            timeout: float = 60.0, extra_headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
    """One request on its own connection: the status and the decoded JSON answer.

    A connection per request, as the CLI does: a write is never sent twice because a kept-alive
    connection turned out to be closed. Non-2xx answers raise the typed exception of their code.
    """
    connection = UnixHTTPConnection(path, timeout=timeout)
    try:
        try:
            connection.connect()
        except PermissionError as e:
            raise DaemonUnreachable(
                f"cannot connect to anonregd at {path}: permission denied; this user must be in the socket's group") from e
        except OSError as e:
            raise DaemonUnreachable(f"cannot connect to anonregd at {path}: {e.strerror or e}") from e
        headers = {"Accept": "application/json", "Connection": "close", **(extra_headers or {})}
        payload: Optional[bytes] = None
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, target, body=payload, headers=headers)
            response = connection.getresponse()
            status = response.status
            raw = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise DaemonUnreachable(f"anonregd at {path} did not answer: {e}") from e
    finally:
        connection.close()
    content_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
    if content_type != "application/json":
        raise ProtocolError(f"expected JSON, got {content_type or 'no content type'} with HTTP {status}")
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"the answer is not JSON (HTTP {status})") from e
    if not 200 <= status < 300:
        detail = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(detail, dict) or not isinstance(detail.get("code"), str):
            raise ProtocolError(f"HTTP {status} without an error body")
        index = detail.get("index")
        raise error_for(status, detail["code"], str(detail.get("message", "")), index if isinstance(index, int) else None)
    return status, answer
