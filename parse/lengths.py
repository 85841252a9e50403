"""Length options of the label-free parsers (windows, kernels, shortest segments): a fraction
``0 < f < 1`` of the instance's rows or a whole number of rows. A fraction gives an instance of 113
rows and one of 280 the same share of their duration, and a cache at stride 3 the same boundaries
in time as one at stride 1; a fixed row count over-parsed TAPOS's structure."""
from __future__ import annotations

from tapos.data.errors import TaposError


def is_fraction(value) -> bool:
    """A length option given as a share of the instance: a float strictly between 0 and 1."""
    return isinstance(value, float) and 0.0 < value < 1.0


def length_rows(value, rows: int, least: int = 1) -> int:
    """A length option in rows for an instance of ``rows`` rows: a fraction ``0 < f < 1`` of the
    instance (``round(f * rows)``, at least ``least``) or a whole number of rows as it is."""
    if is_fraction(value):
        return max(int(least), int(round(value * rows)))
    return int(value)


def check_length(method: str, key: str, value, least: int = 1, even: bool = False) -> None:
    """Refuse, in one line, a length option that is neither a fraction ``0 < f < 1`` of the
    instance nor a whole number of rows >= ``least`` (even if ``even``)."""
    if is_fraction(value):
        return
    whole = isinstance(value, int) and not isinstance(value, bool) and value >= least and (not even or value % 2 == 0)
    if not whole:
        rows = f"an even number of rows >= {least}" if even else f"a whole number of rows >= {least}"
        raise TaposError(f"{method}: {key} must be {rows} or a fraction of the instance (0 < f < 1), "
                         f"not {value!r}")
