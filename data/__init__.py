"""tapos.data: the contract between the stages.

The contract modules: annotation records (``instances``, read by ``annotations`` in the TAPOS and
Kinetics-GEBD layouts), prediction files, the feature-cache schema with its reader (``features``),
the clock (``clock``: time <-> rows <-> annotation frames), where videos and instances are
(``videos``), the chance prior, the options check and the one atomic-write helper (``io``).
Besides them, two subpackages: ``tapos.data.synth``, the synthetic dataset, and
``tapos.data.machinery``, what every stage shares without it being a format (video I/O, the torch
dataset, checkpoints, distributed runs, figures, command-line helpers). This package imports no
stage (``.importlinter``).
"""
from .annotations import (
    SPLITS,
    SUBSETS,
    Annotations,
    Instance,
    annotations_from_dict,
    load_annotations,
    parse_instance_id,
    rescale_boundaries,
    save_annotations,
    split_key,
)
from .errors import AnnotationError, FeatureCacheError, PredictionError, TaposError, UnsafePickleError
from .features import DTYPES, MODALITY_CHOICES, SCHEMA, ExtractionSettings, FeatureReader, FeatureWriter, InstanceInfo, parse_modality
from .gebd import GebdVideo, gebd_to_tapos, load_gebd, save_gebd, tapos_to_gebd
from .io import safe_load_pickle
from .predictions import load_predictions, save_predictions
from .version import __version__


def __getattr__(name):
    # The torch Dataset is imported on first use so that torch-free commands start fast.
    if name == "FeatureDataset":
        from .machinery.dataset import FeatureDataset

        return FeatureDataset
    raise AttributeError(name)


__all__ = [
    "SPLITS", "SUBSETS", "Annotations", "Instance", "annotations_from_dict", "load_annotations", "parse_instance_id",
    "rescale_boundaries", "save_annotations", "split_key", "AnnotationError", "FeatureCacheError",
    "PredictionError", "TaposError", "UnsafePickleError", "DTYPES", "MODALITY_CHOICES", "SCHEMA", "ExtractionSettings", "FeatureReader", "FeatureWriter",
    "InstanceInfo", "parse_modality", "GebdVideo", "gebd_to_tapos", "load_gebd", "save_gebd", "tapos_to_gebd",
    "safe_load_pickle", "load_predictions", "save_predictions", "FeatureDataset", "__version__",
]
