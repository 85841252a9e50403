"""Method name -> parser class: ``@register`` adds a class, ``get_parser`` builds one."""
from __future__ import annotations

PARSERS: dict = {}
"""Method name -> parser class; each method module adds its class with ``@register`` when
``tapos.parse`` is imported."""


def register(cls):
    """Class decorator: make ``cls`` available as ``cls.name`` in ``tapos-parse --method``."""
    if cls.name in PARSERS:
        raise ValueError(f"parser {cls.name!r} registered twice")
    PARSERS[cls.name] = cls
    return cls


def get_parser(name: str, **config):
    """The parser registered as ``name``, built with ``config`` (its ``DEFAULTS`` overridden, as
    ``tapos-parse train --set`` does; ``preset=`` names a preset). An unknown name is a one-line
    ``TaposError`` listing the known ones."""
    from tapos.data.errors import TaposError

    if name not in PARSERS:
        raise TaposError(f"unknown method {name!r} (choose from {', '.join(sorted(PARSERS))})")
    return PARSERS[name](**config)
