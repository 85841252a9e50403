"""What every tapos command line shares: one-line errors instead of tracebacks."""
from __future__ import annotations

import json

import click

from ..errors import TaposError


class TaposGroup(click.Group):
    """A click group whose commands report ``TaposError`` and file errors as ``Error: ...``
    on one line with exit status 1 (click's own usage errors exit with 2)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TaposError as exc:
            raise click.ClickException(str(exc)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            where = exc.filename or ""
            raise click.ClickException(f"{where}: {exc.strerror}" if where else str(exc)) from None
        except RuntimeError as exc:
            if type(exc).__name__ != "OutOfMemoryError":  # torch's GPU OOM, matched without importing torch
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "CUDA out of memory"
            raise click.ClickException(f"out of GPU memory ({first}); use a smaller batch size (--batch-size, "
                                       f"or --set batch_size=N)") from None


class DefaultCommandGroup(TaposGroup):
    """A group whose first argument, when it is not a command name, goes to the default command
    (``tapos-extract videos/ out.h5`` is ``tapos-extract run videos/ out.h5``)."""

    default_command = "run"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def echo_table(df, float_format="{:.4f}") -> None:
    """Print a pandas table in full, floats with a fixed number of decimals."""
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        click.echo(df.to_string(float_format=lambda v: float_format.format(v)))


def parse_overrides(items, defaults: dict) -> dict:
    """``--set NAME=VALUE`` options: NAME must be a key of ``defaults``; VALUE is read as JSON
    (``3``, ``0.5``, ``[25, 30]``, ``null``) or else kept as a string."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in defaults:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(defaults)}",
                                     param_hint="--set")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


class RegistryChoice(click.Choice):
    """A choice among a registry's names (a dict filled by a ``register_*`` decorator), read when
    the command line is parsed: a plug-in registered after the command was built is offered too."""

    def __init__(self, registry: dict):
        self.registry = registry
        super().__init__((), case_sensitive=True)

    @property
    def choices(self) -> tuple:
        return tuple(sorted(self.registry))

    @choices.setter
    def choices(self, _value) -> None:
        pass  # always the registry's names
