"""tapos.evaluate: boundary precision / recall / F1 in the TAPOS paper's and the GEBD protocols.

It judges prediction files and knows no parsing method.
"""
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

__all__ = [
    "greedy_true_positives", "ABSOLUTE_THRESHOLDS", "MIN_CONSISTENCY", "RELATIVE_THRESHOLDS",
    "EvaluationResult", "Scores", "evaluate_gebd", "evaluate_tapos", "evaluate_tapos_by_class", "human_agreement", "human_rounds",
]
