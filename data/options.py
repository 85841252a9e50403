"""Options: every stage keeps its defaults in one commented dict; this is how overrides meet it."""
from __future__ import annotations

import difflib
from typing import Mapping, Optional

from .errors import TaposError


class OptionError(TaposError):
    """An option that the defaults dict does not know."""


def apply_options(defaults: Mapping, overrides: Optional[Mapping], what: str) -> dict:
    """``{**defaults, **overrides}`` after checking that every override names a default.

    ``what`` names the owner in the error ("extraction", "transparser", "TSN", ...). A misspelt
    option is refused rather than ignored: a silently ignored ``lr`` is a wrong experiment.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        close = [m for u in unknown for m in difflib.get_close_matches(u, list(defaults), n=1)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise OptionError(f"{what}: unknown option(s) {', '.join(unknown)} (known: {', '.join(defaults)}){hint}")
    return {**defaults, **overrides}
