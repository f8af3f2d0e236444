"""The error types of dass-edge. The CLI maps each to a one-line message and an exit code (cli/app.py)."""

from __future__ import annotations


class DassEdgeError(Exception):
    """Base class: anything the toolkit raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(DassEdgeError):
    """Bad user input: a missing or corrupt file, an unknown name, a value out of range."""

    exit_code = 2


class MissingDependencyError(DassEdgeError):
    """An optional runtime or tool is not installed; the message names what to install."""

    exit_code = 3

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"{module} is not installed; install it with: pip install 'dass-edge[{extra}]'"
        )
        self.module = module
        self.extra = extra


class MissingToolError(MissingDependencyError):
    """A system tool (a C compiler, qemu-user) is not installed; the message names the Debian package. Same
    exit code as a missing Python package: the fix is an install, not another command."""

    def __init__(self, tool: str, package: str):
        DassEdgeError.__init__(self, f"{tool} is not installed; install it with: apt-get install {package}")
        self.module = tool
        self.extra = package


class ParityError(DassEdgeError):
    """An exported model disagrees with PyTorch by more than the target's tolerance."""

    exit_code = 4


class RemoteError(DassEdgeError):
    """An attached board could not be reached, refused us, or failed mid-run."""

    exit_code = 5


class RegressionError(DassEdgeError):
    """A latency measurement is slower than its baseline by more than the tolerance."""

    exit_code = 10


class DownloadError(DassEdgeError):
    """Something that can be downloaded could not be (offline, say); the message says what to fetch by hand."""

    exit_code = 6


class DeadModelError(DassEdgeError):
    """A network whose output does not depend on its input (every path pruned away, BN shifts left as a
    constant): exporting, validating or timing it would report numbers about a constant."""

    exit_code = 7


class FileSystemError(DassEdgeError):
    """The operating system refused a file operation: permission denied, a missing or read-only folder, a
    full disk. Its own exit code, because the fix is on the machine, not in the command's arguments."""

    exit_code = 8

    @classmethod
    def from_os_error(cls, exc: OSError, doing: str = "") -> FileSystemError:
        """One line from an OSError: what was being done, the path, and the system's reason."""
        reason = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        what = " ".join(str(part) for part in (doing, exc.filename) if part)
        return cls(f"{what}: {reason}" if what else reason)


class InconclusiveError(DassEdgeError):
    """A latency gate that cannot decide: the confidence interval of the ratio spans the tolerance limit
    because the run was too noisy; reported on its own rather than passed (or failed) silently."""

    exit_code = 11


class DistributedError(DassEdgeError):
    """A torchrun job lost a peer: a rank crashed, hung past the process-group timeout or became unreachable."""

    exit_code = 9


class BoardBusyError(DassEdgeError):
    """The board stayed locked by another bench (another job, another host) for all of --wait-board: its own
    exit code, since the fix is to wait or retry later, not to repair the board or the command."""

    exit_code = 12


class EnvironmentMismatchError(DassEdgeError):
    """A comparison across environments: the baseline was measured on another CPU, kernel, governor, clock,
    runtime version or thread count (or a board is not ready: ``dass-edge boards doctor``). Its own exit code,
    since the fix is to re-record the baseline where the gate runs (or to fix the machine), not to retry."""

    exit_code = 13
