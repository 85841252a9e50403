"""Method name -> parser class: ``@register`` adds a class, ``get_parser`` builds one."""
from __future__ import annotations

PARSERS: dict = {}


def register(cls):
    """Class decorator: make ``cls`` available as ``cls.name`` in ``tapos-parse --method``."""
    if cls.name in PARSERS:
        raise ValueError(f"parser {cls.name!r} registered twice")
    PARSERS[cls.name] = cls
    return cls


def get_parser(name: str, **config):
    from tapos.data.errors import TaposError

    if name not in PARSERS:
        raise TaposError(f"unknown method {name!r} (choose from {', '.join(sorted(PARSERS))})")
    return PARSERS[name](**config)
