"""What every tapos command line shares: one-line errors instead of tracebacks."""
from __future__ import annotations

import click

from .errors import TaposError


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


def echo_table(df, float_format="{:.4f}") -> None:
    """Print a pandas table in full, floats with a fixed number of decimals."""
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        click.echo(df.to_string(float_format=lambda v: float_format.format(v)))
