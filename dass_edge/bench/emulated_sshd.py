"""The sshd of an emulated board: OpenSSH on 127.0.0.1 with the board's own host and user keys.

Why a real sshd and not a shortcut to the wrapper script: ``bench --board NAME-emulated`` must go through
the same SSH login, SFTP copy, host-key check and agent run as a real board, so whatever breaks there
breaks here first. The keys are made once when the board is built; the server is started on first use on
a free port (the port and the known_hosts line are rewritten then) and runs on as a daemon until
``dass-edge boards stop``. It listens on the loopback interface only and accepts only the board's key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from dass_edge.errors import DassEdgeError, MissingDependencyError, RemoteError

HOST_KEY = "host_ed25519_key"
USER_KEY = "user_ed25519_key"
KNOWN_HOSTS = "known_hosts"
STATE = "state.json"
START_TIMEOUT_S = 10.0


class MissingToolError(MissingDependencyError):
    """A Debian tool rather than a Python extra: the same exit code, an apt-get hint."""

    def __init__(self, tool: str, package: str):
        DassEdgeError.__init__(self, f"{tool} is not installed; install it with: apt-get install {package}")


def find_tool(name: str, package: str) -> str:
    """The absolute path of ``name`` (sbin folders included: sshd lives there), or MissingToolError."""
    path = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if path is None:
        raise MissingToolError(name, package)
    return path


def make_keys(folder: Path) -> None:
    """Host and user keys (ed25519, no passphrase: they open nothing but this loopback server)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in (HOST_KEY, USER_KEY):
        subprocess.run([find_tool("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "",
                        "-C", f"dass-edge {name}", "-f", str(folder / name)], check=True, capture_output=True)
    # 'restrict': no forwarding, no pty; commands and the SFTP subsystem still work
    (folder / "authorized_keys").write_text("restrict " + (folder / f"{USER_KEY}.pub").read_text())


def _config(folder: Path, port: int) -> str:
    return (f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {folder / HOST_KEY}\nPidFile {folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nStrictModes no\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nLogLevel ERROR\n"
            "AllowTcpForwarding no\nX11Forwarding no\nSubsystem sftp internal-sftp\n")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _ours(pid: int, folder: Path) -> bool:
    """The process ``pid`` is alive and is this board's sshd (a recycled pid is someone else's)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(folder / "sshd_config") in cmdline


def _state(folder: Path) -> dict[str, int] | None:
    try:
        state = json.loads((folder / STATE).read_text())
        return {"pid": int(state["pid"]), "port": int(state["port"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One starter at a time: two bench calls at once must not start two servers."""
    with open(folder / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def running_port(folder: Path) -> int | None:
    state = _state(folder)
    if state and _ours(state["pid"], folder) and _answers(state["port"]):
        return state["port"]
    return None


def ensure_running(folder: Path) -> int:
    """The port of the board's sshd, started first if it is not running."""
    if not (folder / HOST_KEY).is_file():
        raise RemoteError(f"{folder} holds no emulated board's keys; rebuild it with dass-edge boards emulate")
    with _locked(folder):
        port = running_port(folder)
        return port if port is not None else _start(folder)


def _start(folder: Path) -> int:
    port = _free_port()
    config = folder / "sshd_config"
    _write(config, _config(folder, port))
    kind, blob = (folder / f"{HOST_KEY}.pub").read_text().split()[:2]
    _write(folder / KNOWN_HOSTS, f"[127.0.0.1]:{port} {kind} {blob}\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege-separation folder (Debian makes it at boot)
    done = subprocess.run([find_tool("sshd", "openssh-server"), "-f", str(config), "-E", str(folder / "sshd.log")],
                          capture_output=True, text=True, timeout=START_TIMEOUT_S)  # forks into the background
    deadline = time.monotonic() + START_TIMEOUT_S
    while done.returncode == 0 and not _answers(port):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    try:
        pid = int((folder / "sshd.pid").read_text())
    except (OSError, ValueError):
        pid = 0
    if done.returncode != 0 or not pid or not _answers(port):
        log = (folder / "sshd.log").read_text(errors="replace") if (folder / "sshd.log").is_file() else ""
        lines = [ln for ln in (done.stderr + log).splitlines() if ln.strip()]
        raise RemoteError(f"the emulated board's sshd did not start on 127.0.0.1:{port}: "
                          f"{lines[-1].strip() if lines else 'exit ' + str(done.returncode)}")
    _write(folder / STATE, json.dumps({"pid": pid, "port": port}) + "\n")
    return port


def stop(folder: Path) -> bool:
    """Stop the board's sshd; False when none was running."""
    if not folder.is_dir():
        return False
    with _locked(folder):
        state = _state(folder)
        (folder / STATE).unlink(missing_ok=True)
        if not state or not _ours(state["pid"], folder):
            return False
        os.kill(state["pid"], signal.SIGTERM)
        deadline = time.monotonic() + START_TIMEOUT_S
        while _ours(state["pid"], folder) and time.monotonic() < deadline:
            time.sleep(0.05)
        return True
