"""Optical-flow methods: ``@register_flow`` adds one, ``FLOW_METHODS`` maps names to them.

A method is a :class:`FlowMethod` subclass in its own file (``opencv_flow.py``: tvl1, dis,
farneback; ``tvl1.py``: tvl1-torch). It says what the cache records about its fields and builds
the function that computes them; :class:`tapos.extract.flow.FlowComputer` quantises, crops and
stacks them alike for every method. ``tapos-extract --flow``, ``tapos-parse video --flow`` and
``tapos-tsn --set flow=`` offer every registered name.
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

from tapos.data.machinery.registry import Registry
from tapos.data.options import OptionError, apply_options

from .inputs import FLOW_BOUND, FLOW_SIZE, FLOW_STACK

FLOW_METHODS = Registry("flow method")  # name -> the flow method (one instance of each registered class)
register_flow = FLOW_METHODS.register  # class decorator: the class's one instance under its ``name``


def get_flow_method(name: str) -> "FlowMethod":
    return FLOW_METHODS.lookup(name)


class FlowMethod:
    """One optical-flow method. A subclass sets ``name`` and ``record`` and writes
    ``pair_function`` (one frame pair at a time, run by a pool of threads) or, with
    ``batched = True``, ``batch_function`` (every pair of a chunk at once, e.g. on a GPU)."""

    name = ""
    summary = ""          # one phrase for --help
    # What its fields depend on besides the frames, recorded in the cache: the flow rows of two
    # caches are comparable only when these agree.
    record: dict = {}
    batched = False
    DEFAULTS: Optional[dict] = None  # its options (tapos-extract --set NAME=VALUE); None: it takes none

    def pair_function(self, options: Optional[dict] = None) -> Callable:
        """``fn(prev, next)``: two ``(H, W)`` uint8 gray frames -> ``(H, W, 2)`` float32 pixels.
        Built once per worker thread (OpenCV's flow objects are not thread-safe)."""
        raise NotImplementedError

    def batch_function(self, device: str, options: Optional[dict], threads: int) -> Callable:
        """``fn(frames)``: ``(n, H, W)`` uint8 -> ``(n - 1, H, W, 2)`` float32, all pairs at once
        on ``device`` (``threads``: torch's, on CPU)."""
        raise NotImplementedError

    def check_options(self, options: Optional[Mapping]) -> dict:
        """``DEFAULTS`` with ``options`` applied (an ``OptionError`` in one line when bad)."""
        return apply_options(self.DEFAULTS, options, self.name)

    def options(self, options: Optional[Mapping] = None) -> Optional[dict]:
        """Its options complete and checked; None for a method that takes none (given some: an error)."""
        if self.DEFAULTS is not None:
            return self.check_options(options)
        if options:
            takers = ", ".join(m.name for m in FLOW_METHODS.values() if m.DEFAULTS is not None)
            raise OptionError(f"flow method {self.name}: takes no flow options (got {', '.join(options)}); "
                              f"only {takers} does")
        return None

    def parameters(self, options: Optional[Mapping] = None) -> dict:
        """What a cache records of its flow rows (``options``: its own, for a method that takes them)."""
        checked = self.options(options)
        out = {**self.record, **({"parameters": checked} if checked is not None else {})}
        return {**out, "size": list(FLOW_SIZE), "bound": FLOW_BOUND, "stack": FLOW_STACK}


def flow_parameters(method: str, options: Optional[Mapping] = None) -> dict:
    """The parameters of ``method``'s flow rows, as the cache records them."""
    return get_flow_method(method).parameters(options)
