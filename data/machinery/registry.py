"""A registry of plug-ins of one kind (flow methods, evaluation protocols, TSN samplings): a dict
from name to one instance of each registered class, filled by its ``register`` class decorator.
Each kind keeps its registry in the module that defines its base class."""
from __future__ import annotations

from ..errors import TaposError


class Registry(dict):
    """``name -> plug-in``. ``kind`` names the plug-ins in messages ("flow method", "protocol")."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, cls):
        """Class decorator: one instance of ``cls`` (they keep no state) under ``cls.name``."""
        if cls.name in self:
            raise ValueError(f"{self.kind} {cls.name!r} registered twice")
        self[cls.name] = cls()
        return cls

    def lookup(self, name: str):
        """The plug-in ``name``; an unknown name is a one-line error listing the known ones."""
        if name not in self:
            raise TaposError(f"unknown {self.kind} {name!r} (expected one of {', '.join(self)})")
        return self[name]
