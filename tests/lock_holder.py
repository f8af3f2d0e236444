"""A host that takes a board's lock and keeps it: one process per "CI job" in tests/test_board_lock.py.

``python lock_holder.py BOARD_JSON HOLD_S LEASE_S WAIT_S`` connects to the board (bench/remote.connect, host
key verified), takes its lock, prints ``locked <unix time>``, holds it for HOLD_S seconds (a run on the board
stands in for a measurement: it prints the board's clock at its start and end), releases, and prints
``released`` or ``lost <why>``. A second process runs beside it; the test kills or freezes one of them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dass_edge.bench import lock
from dass_edge.bench.board import Board
from dass_edge.bench.remote import connect
from dass_edge.errors import DassEdgeError


def main() -> int:
    values, hold_s, lease_s, wait_s = json.loads(sys.argv[1]), *map(float, sys.argv[2:5])
    values.update(key=Path(values["key"]), known_hosts=Path(values["known_hosts"]))
    board = Board(**values)
    client = connect(board)
    try:
        with lock.hold(client, board, lock.LockSettings(wait_s=wait_s, lease_s=lease_s, job="test-job")) as lease:
            print(f"locked {time.time():.3f} waited {lease.waited_s:.3f}", flush=True)
            _, out, _ = client.exec_command(f"{board.python} -c 'import time; print(time.time()); "
                                            f"time.sleep({hold_s}); print(time.time())'")
            start, end = out.read().decode().split()
            print(f"window {start} {end}", flush=True)
        print(f"lost {lease.lost}" if lease.lost else "released", flush=True)
    except DassEdgeError as exc:
        print(f"error {type(exc).__name__} {exc}", flush=True)
        return exc.exit_code
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
