"""Options: every component declares its options once, one line each, and the rest is derived.

A component's options are a :class:`Config`: a frozen dataclass whose every field is declared
with :func:`option` (its default and its help, the comment of a defaults dict). From that one
declaration come

- the plain defaults dict (:meth:`Config.defaults`; a component's ``DEFAULTS`` where it keeps one);
- its command line (:meth:`Config.click_options`): one click option per field, in declaration
  order, with the declared help and default;
- the validated config object a library function takes (:meth:`Config.of`): the defaults, then
  the caller's options, an unknown name refused with a did-you-mean (:func:`apply_options`).

Components whose options are a plain commented dict (a parser's ``DEFAULTS``, the synthetic
generator's) meet their overrides through :func:`apply_options` directly.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
from typing import Any, ClassVar, Mapping, Optional

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


def option(default: Any, help: str = "", *, flag: Optional[str] = None, cli: bool = True, **click_kw):
    """One field of a :class:`Config`: its default and its help (shown by ``--help``).

    ``flag``: the command line's spelling when it is not ``--name-with-dashes`` (``"--workers"``,
    ``"--features/--no-features"``); ``cli=False``: an option of the library only (no flag);
    ``click_kw``: anything else ``click.option`` takes (``type``, ``metavar``, ``multiple``,
    ``show_default``). The default is the library's and the command line's alike.
    """
    meta = {"help": help, "flag": flag, "cli": cli, "click": click_kw}
    if isinstance(default, (list, dict, set)):  # mutable: every config gets a copy of its own
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of a component's options; subclasses are ``@dataclass(frozen=True)`` with every field
    declared by :func:`option`, and set ``WHAT`` (the component's name in errors)."""

    WHAT: ClassVar[str] = "options"

    @classmethod
    def defaults(cls) -> dict:
        """``{name: default}`` in declaration order (a fresh copy of mutable defaults)."""
        return {f.name: _default(f) for f in dataclasses.fields(cls)}

    @classmethod
    def of(cls, values=None, /, **options):
        """The config of the defaults, then ``values`` (a mapping or a config), then ``options``;
        a name that is no field is refused (:class:`OptionError`, with a did-you-mean)."""
        values = values.as_dict() if isinstance(values, Config) else dict(values or {})
        return cls(**apply_options(cls.defaults(), {**values, **options}, cls.WHAT))

    def as_dict(self) -> dict:
        """``{name: value}`` in declaration order (``Config.of(c.as_dict()) == c``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def click_options(cls):
        """A decorator that adds the command-line fields as click options, in declaration order,
        each with its help and its default (shown unless the field says ``show_default=False``).
        The command receives them under the field names."""
        import click

        def decorate(command):
            for f in reversed([f for f in dataclasses.fields(cls) if f.metadata["cli"]]):
                command = click.option(*_flags(f), **_click_kwargs(f))(command)
            return command

        return decorate


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _flags(f: dataclasses.Field) -> tuple:
    """The flag (``--name-with-dashes`` unless declared) and the name the command receives."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-"), f.name


def _click_kwargs(f: dataclasses.Field) -> dict:
    kw = {"help": f.metadata["help"], "show_default": True, **f.metadata["click"]}
    default = _default(f)
    if kw.get("multiple"):
        return kw  # given no times: an empty tuple, which the command maps to the default
    if isinstance(default, bool) and "/" not in _flags(f)[0]:
        kw.setdefault("is_flag", True)  # --overwrite, not --overwrite true
    return {"default": default, **kw}
