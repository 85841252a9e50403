"""Length options of the label-free parsers (windows, kernels, shortest segments), in one of three
units:

- seconds, a string such as ``"1.5s"``: converted with the rows' rate, the rows per second of the
  training cache (:attr:`Parser.rate`, recorded by ``fit``). Sub-actions last about as long in
  seconds whatever the instance's length (TAPOS's long instances have more of them), and a cache at
  stride 3 gets the same windows in time as one at stride 1;
- a fraction ``0 < f < 1`` of the instance's rows: the same share of every instance, so about the
  same number of boundaries in each, short or long;
- a whole number of rows.

On TAPOS's structure the count of sub-actions follows the duration, so windows in seconds parse
it and fractions do not (benchmarks/results/label_free_lengths.md, the fit split of synth --like
data): in seconds the label-free counts correlate 0.60-0.78 with the true count per instance, as
fractions -0.05 to 0.06 (embed 0.33), with twice too many boundaries on instances with one or two
and a third of those on instances with five or more."""
from __future__ import annotations

import re
from typing import Optional

from tapos.data.clock import seconds_to_frames
from tapos.data.errors import TaposError

SECONDS = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*s\s*$")


def seconds(value) -> Optional[float]:
    """The seconds of a length option given as ``"1.5s"``; None for any other value."""
    m = SECONDS.match(value) if isinstance(value, str) else None
    return float(m.group(1)) if m else None


def is_fraction(value) -> bool:
    """A length option given as a share of the instance: a float strictly between 0 and 1."""
    return isinstance(value, float) and 0.0 < value < 1.0


def length_value(value, rows: int, rate: Optional[float] = None) -> float:
    """A length option in rows, unrounded: seconds times ``rate`` (rows per second), a fraction
    ``0 < f < 1`` of the instance's ``rows``, or a whole number of rows as it is."""
    s = seconds(value)
    if s is not None:
        if not rate:
            raise TaposError(f"a length of {value!r} needs the rows' rate (rows per second), which fit records; "
                             "fit the parser first, or give the length in rows")
        return float(seconds_to_frames(s, rate))  # rows at ``rate`` rows per second
    return value * rows if is_fraction(value) else float(value)


def length_rows(value, rows: int, least: int = 1, rate: Optional[float] = None) -> int:
    """A length option in whole rows for an instance of ``rows`` rows (:func:`length_value`
    rounded), at least ``least``."""
    return max(int(least), int(round(length_value(value, rows, rate))))


def check_length(method: str, key: str, value, least: int = 1, even: bool = False) -> None:
    """Refuse, in one line, a length option that is neither seconds (``"1.5s"``), a fraction
    ``0 < f < 1`` of the instance nor a whole number of rows >= ``least`` (even if ``even``)."""
    if is_fraction(value) or (seconds(value) or 0) > 0:
        return
    whole = isinstance(value, int) and not isinstance(value, bool) and value >= least and (not even or value % 2 == 0)
    if not whole:
        rows = f"an even number of rows >= {least}" if even else f"a whole number of rows >= {least}"
        raise TaposError(f"{method}: {key} must be seconds (e.g. \"1.5s\"), a fraction of the instance (0 < f < 1) "
                         f"or {rows}, not {value!r}")
