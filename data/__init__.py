"""tapos.data: the contract between the stages.

Annotation records (TAPOS and Kinetics-GEBD layouts), prediction files, the feature-cache schema
with its reader, the clock (``tapos.data.clock``: time <-> rows <-> annotation frames), dataset
statistics, where videos and instances are (``tapos.data.videos``), the synthetic dataset, the
options check and the one ffmpeg wrapper. This package imports no stage.
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
        from .dataset import FeatureDataset

        return FeatureDataset
    raise AttributeError(name)


__all__ = [
    "SPLITS", "SUBSETS", "Annotations", "Instance", "annotations_from_dict", "load_annotations", "parse_instance_id",
    "rescale_boundaries", "save_annotations", "split_key", "AnnotationError", "FeatureCacheError",
    "PredictionError", "TaposError", "UnsafePickleError", "DTYPES", "MODALITY_CHOICES", "SCHEMA", "ExtractionSettings", "FeatureReader", "FeatureWriter",
    "InstanceInfo", "parse_modality", "GebdVideo", "gebd_to_tapos", "load_gebd", "save_gebd", "tapos_to_gebd",
    "safe_load_pickle", "load_predictions", "save_predictions", "FeatureDataset", "__version__",
]
