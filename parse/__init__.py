"""tapos.parse: temporal action parsing on cached features.

Every method has the same interface (``tapos.parse.base.Parser``): build it from a config, fit
it on a training split, predict boundaries for an instance's features. A method that labels every
row extends ``LabellingParser`` and writes only its labels; one trained by gradient descent extends
``TorchParser`` and writes its model and losses. ``PARSERS`` maps method names to classes
(``tapos-parse methods`` lists them with their options).
"""
from . import ctm, embed, isba, kcpd, kmeans, pa, prior, tcn, transparser, tsm  # noqa: F401  (registers the methods)
from .base import FitOptions, LabellingParser, Parser, TorchParser
from .registry import PARSERS, get_parser
from .validation import predict_dataset, validation_scores

__all__ = ["FitOptions", "LabellingParser", "Parser", "TorchParser", "PARSERS", "get_parser", "predict_dataset",
           "validation_scores"]
