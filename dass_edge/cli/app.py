"""The `dass-edge` command: wires the command modules and maps toolkit errors to one-line messages.

Each command module exposes ``register(app)``; this file only collects them. Errors derived from
DassEdgeError become ``error: <message>`` on stderr and the error's exit code (see errors.py); an OSError
that reaches this far (permissions, a missing folder, a full disk) becomes FileSystemError's one line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

import typer

from dass_edge.errors import DassEdgeError, FileSystemError

try:  # recent Typer vendors its own click; older ones use click itself
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as _click_errors

_NO_ARGS_IS_HELP = getattr(_click_errors, "NoArgsIsHelpError", ())  # a bare group: click prints its help


class _Group(typer.core.TyperGroup):
    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except _click_errors.UsageError as exc:  # a value click could not parse: one line too, exit 2 as click's
            where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            _fail(exc.format_message() + where, exc.exit_code)
        except DassEdgeError as exc:
            _fail(str(exc), exc.exit_code)
        except BrokenPipeError:  # stdout closed early (`| head`): nothing to report, and nowhere to report it
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            raise typer.Exit(1) from None
        except OSError as exc:
            _fail(str(FileSystemError.from_os_error(exc)), FileSystemError.exit_code)


def _fail(message: str, exit_code: int) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)  # one line, whatever the message held
    raise typer.Exit(exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="dass-edge",
    help="Search, fine-tune, export and measure extremely sparse CNNs (DASS) for edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def _register_all() -> None:
    from dass_edge.cli import bench, boards, demo, export, history, pareto, predict, targets, train

    for module in (train, export, bench, boards, history, predict, pareto, targets, demo):
        module.register(app)


_register_all()


def main() -> None:
    app()
