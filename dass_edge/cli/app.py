"""The `dass-edge` command: wires the command modules and maps toolkit errors to one-line messages.

Each command module exposes ``register(app)``; this file only collects them. Errors derived from
DassEdgeError become ``error: <message>`` on stderr and the error's exit code (see errors.py).
"""

from __future__ import annotations

import logging

import typer

from dass_edge.errors import DassEdgeError


class _Group(typer.core.TyperGroup):
    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except DassEdgeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


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
    from dass_edge.cli import bench, boards, demo, export, pareto, predict, targets, train

    for module in (train, export, bench, boards, predict, pareto, targets, demo):
        module.register(app)


_register_all()


def main() -> None:
    app()
