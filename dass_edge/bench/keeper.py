"""The board lock's keeper: a small process that runs ON THE BOARD and holds its lock for one host.

Why on the board: two host machines (two CI runners) that share a board can only exclude each other
where they meet, on the board. Why a process and not a lock file with a time stamp: the kernel releases
an ``flock`` the moment its holder dies, so a killed keeper never leaves the board locked, and nothing
has to guess whether a time stamp is stale.

The host starts this file with the board's Python (3.6+, standard library only) over the same SSH
connection it measures through, and writes a heartbeat line to its stdin every few seconds. The keeper
takes an exclusive ``flock`` on ``LOCK`` (waiting up to ``--wait`` seconds, polling), writes who holds it
to ``LOCK.json`` (host, user, pid, CI job, since, lease), then holds it until one of:

- the host writes ``release``;
- stdin closes: the SSH connection is gone (host killed, network cut and noticed by sshd);
- no heartbeat arrives within ``--lease`` seconds: the host hangs, or the connection is silently dead.

Every event is one JSON line on stdout (``waiting``, ``locked``, ``busy``, ``released``, ``who``,
``error``). ``--who`` only reports the holder without taking the lock. The script removes its own file
when it starts, so nothing is left in the work folder whatever happens to it later.
"""

import argparse
import errno
import fcntl
import json
import os
import select
import sys
import time
from datetime import datetime, timezone

POLL_S = 0.25  # how often a waiting keeper retries the lock
EXIT_RELEASED, EXIT_BUSY, EXIT_ERROR = 0, 3, 4
SENT_PREFIX = ".dass-edge-keeper-"  # the name of the copy the host sends (lock.py)


def emit(event, **fields):
    """One JSON line for the host; flushed at once (stdout is a pipe, buffered otherwise)."""
    fields["event"] = event
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


def now_utc():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_holder(path):
    """The holder record beside the lock, or None (absent, or being replaced)."""
    try:
        with open(path) as handle:
            holder = json.load(handle)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def open_lock(path):
    """The lock file's descriptor, made writable for every user of the board (they share one lock);
    read-only when another user created it (flock works on a read-only descriptor)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o666)
    except OSError:
        pass  # not ours: its owner decided
    return fd


def try_lock(fd, mode):
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


class Heartbeats:
    """The host's lines on stdin, read without blocking past a deadline."""

    def __init__(self, lease_s):
        self.lease_s = lease_s
        self.last = time.monotonic()
        self.pending = b""

    def poll(self, timeout_s):
        """Wait up to ``timeout_s`` for input; returns 'eof', 'release', 'expired' or None (still held)."""
        if time.monotonic() - self.last > self.lease_s:
            return "expired"
        ready, _, _ = select.select([0], [], [], max(0.0, timeout_s))
        if not ready:
            return "expired" if time.monotonic() - self.last > self.lease_s else None
        data = os.read(0, 4096)
        if not data:
            return "eof"
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            if line.strip() == b"release":
                return "release"
            self.last = time.monotonic()  # any other line is a heartbeat
        return None


def write_holder(path, holder):
    """Replace the holder record in one rename, so a reader never sees half of it."""
    tmp = "{}.{}.tmp".format(path, os.getpid())
    try:
        with open(tmp, "w") as handle:
            json.dump(holder, handle, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:  # e.g. a stale record of another user in a sticky /tmp
        sys.stderr.write("cannot write the holder record {}: {}\n".format(path, exc))
        try:
            os.unlink(tmp)
        except OSError:
            pass


def remove_holder(path, token):
    """Remove the record if it is still ours (done before the lock is released, never after)."""
    holder = read_holder(path)
    if holder is not None and holder.get("token") == token:
        try:
            os.unlink(path)
        except OSError:
            pass


def wait_for_lock(fd, path, wait_s, beats):
    """True once locked; False when ``wait_s`` ran out; an end reason ('eof', ...) when the host went away."""
    deadline = time.monotonic() + wait_s
    seen = None
    while not try_lock(fd, fcntl.LOCK_EX):
        holder = read_holder(path + ".json")
        if holder != seen:
            emit("waiting", holder=holder)
            seen = holder
        if time.monotonic() >= deadline:
            emit("busy", holder=holder, waited_s=round(wait_s, 3))
            return False
        ended = beats.poll(min(POLL_S, max(0.0, deadline - time.monotonic())))
        if ended is not None:
            return ended
    return True


def hold(args, holder):
    """Take the lock (waiting), hold it while heartbeats arrive; the process's exit code."""
    beats = Heartbeats(args.lease)
    fd = open_lock(args.lock)
    started = time.monotonic()
    got = wait_for_lock(fd, args.lock, args.wait, beats)
    if got is False:
        return EXIT_BUSY
    if got is not True:
        emit("released", reason=got, held_s=0.0)
        return EXIT_RELEASED
    holder.update(since=now_utc(), lease_s=args.lease, keeper_pid=os.getpid(),
                  waited_s=round(time.monotonic() - started, 3))
    write_holder(args.lock + ".json", holder)
    emit("locked", holder=holder)
    locked_at = time.monotonic()
    reason = None
    while reason is None:
        reason = beats.poll(POLL_S * 4)
    remove_holder(args.lock + ".json", holder.get("token"))
    os.close(fd)  # releases the flock
    emit("released", reason=reason, held_s=round(time.monotonic() - locked_at, 3))
    return EXIT_RELEASED


def who(path):
    """Report the holder without taking the lock (a shared try-lock fails while someone holds it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        emit("who", held=False, holder=None)
        return EXIT_RELEASED
    try:
        free = try_lock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)
    emit("who", held=not free, holder=None if free else read_holder(path + ".json"))
    return EXIT_RELEASED


def main(argv=None):
    parser = argparse.ArgumentParser(description="Hold the board's lock while the host's heartbeats arrive.")
    parser.add_argument("lock", help="the lock file (its holder record is LOCK.json)")
    parser.add_argument("--holder", default="{}", help="JSON: who asks (host, user, pid, job, token)")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for a busy lock")
    parser.add_argument("--lease", type=float, default=30.0, help="seconds without a heartbeat before giving up")
    parser.add_argument("--who", action="store_true", help="only report who holds the lock")
    args = parser.parse_args(argv)
    try:
        if args.who:
            return who(args.lock)
        return hold(args, json.loads(args.holder))
    except (OSError, ValueError) as exc:
        emit("error", error="{}: {}".format(type(exc).__name__, exc))
        return EXIT_ERROR


if __name__ == "__main__":
    if os.path.basename(__file__).startswith(SENT_PREFIX):  # the sent copy, never the package's own file
        try:
            os.unlink(os.path.abspath(__file__))  # loaded already: leave nothing behind on the board
        except OSError:
            pass
    sys.exit(main())
