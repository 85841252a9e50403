"""tapos.parse: temporal action parsing on cached features.

Every method has the same interface (``tapos.parse.base.Parser``): build it from a config, fit
it on a training split, predict boundaries for an instance's features. ``PARSERS`` maps method
names to classes: transparser, kmeans, isba, ctm, tcn, pa.
"""
from . import ctm, isba, kmeans, pa, tcn, transparser  # noqa: F401  (registers the methods)
from .base import FitOptions, Parser
from .registry import PARSERS, get_parser
from .validation import predict_dataset, validation_scores

__all__ = ["FitOptions", "Parser", "PARSERS", "get_parser", "predict_dataset", "validation_scores"]
