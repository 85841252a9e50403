"""Evaluation protocols: ``@register_protocol`` adds one, ``PROTOCOLS`` maps names to them.

A protocol is a :class:`Protocol` subclass in its own file (``gebd_protocol.py``,
``tapos_protocol.py``): it reads its ground truth, scores predictions against it and says how
its numbers read. ``tapos-evaluate NAME GT PRED`` runs every registered protocol the same way
(scores, reference lines, --json, --plot); :mod:`tapos.evaluate.reference` and the tables ask it
the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from tapos.data.machinery.registry import Registry

PROTOCOLS = Registry("protocol")  # name -> the protocol (one instance of each registered class)
register_protocol = PROTOCOLS.register  # class decorator: the class's one instance under its ``name``


def get_protocol(name) -> "Protocol":
    """The registered protocol ``name`` (a ``Protocol`` is returned as it is)."""
    return name if isinstance(name, Protocol) else PROTOCOLS.lookup(name)


@dataclass
class GroundTruth:
    """What a protocol reads from its ground-truth file."""

    scored: Mapping                   # what ``score`` reads: {key: Instance}, {key: GebdVideo}, ...
    annotations: Optional[object] = None  # the file as tapos.data.load_annotations reads it (None: read
                                          # when the reference lines need it)
    instances: Optional[Mapping] = None   # the scored instances, {key: Instance} (None: every instance)


class Protocol:
    """One evaluation protocol. A subclass sets ``name``, ``title`` and ``summary`` and writes
    ``load`` and ``score``; ``options`` adds options to its command, passed to both by name."""

    name = ""                          # tapos-evaluate NAME; EvaluationResult.protocol
    title = ""                         # how tables name it: "== TITLE: relative thresholds"
    summary = ""                       # one line in tapos-evaluate --help
    help = ""                          # its command's help (default: the summary)
    seconds = False                    # predictions in seconds from the instance start (else annotation frames)
    relative_unit = "rel. threshold"   # the relative thresholds' column in tables
    options: tuple = ()                # click options of its command, e.g. (click.option("--split", ...),)

    def load(self, path, **options) -> GroundTruth:
        """The ground truth in ``path`` (a bad file: a ``TaposError`` naming it)."""
        raise NotImplementedError

    def score(self, truth: Mapping, predictions: Mapping, **options):
        """An ``EvaluationResult`` of ``predictions`` (``{key: boundaries}``) against ``truth``
        (``GroundTruth.scored``)."""
        raise NotImplementedError

    def report_more(self, truth: GroundTruth, predictions: Mapping, json_out, plot, **options) -> None:
        """Output of its own after the scores and reference lines (TAPOS: ``--by-class``)."""
