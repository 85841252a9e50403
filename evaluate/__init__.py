"""tapos.evaluate: boundary precision / recall / F1 in the TAPOS paper's and the GEBD protocols.

It judges prediction files and knows no parsing method. ``PROTOCOLS`` maps names to protocols
(``tapos-evaluate NAME``); a new one is a ``Protocol`` subclass with ``@register_protocol``.
"""
from . import gebd_protocol, tapos_protocol  # noqa: F401  (register the protocols)
from .matching import greedy_true_positives
from .protocols import (
    ABSOLUTE_THRESHOLDS,
    MIN_CONSISTENCY,
    RELATIVE_THRESHOLDS,
    EvaluationResult,
    Scores,
    evaluate_gebd,
    evaluate_tapos,
    evaluate_tapos_by_class,
    human_agreement,
    human_rounds,
)
from .registry import PROTOCOLS, GroundTruth, Protocol, get_protocol, register_protocol

__all__ = [
    "greedy_true_positives", "ABSOLUTE_THRESHOLDS", "MIN_CONSISTENCY", "RELATIVE_THRESHOLDS",
    "EvaluationResult", "Scores", "evaluate_gebd", "evaluate_tapos", "evaluate_tapos_by_class", "human_agreement",
    "human_rounds", "PROTOCOLS", "GroundTruth", "Protocol", "get_protocol", "register_protocol",
]
