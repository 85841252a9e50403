"""tapos.extract: BNInception RGB and optical-flow features from videos to the feature cache.

Stage one of the pipeline: it writes the cache (schema tapos-features/1) that parse and tsn read.
"""
from .bninception import BNInception, build_bninception, cross_modality_init, fold_batchnorm
from .clips import KEY_SEPARATOR, clips_from_annotations, clips_from_folder
from .decode import Clip, ClipReader, Sampling, read_clip
from .flow import FLOW_METHODS
from .pipeline import DEFAULTS, Report, extract
from .store import PartStore, merge

__all__ = [
    "BNInception", "build_bninception", "cross_modality_init", "fold_batchnorm", "KEY_SEPARATOR",
    "clips_from_annotations", "clips_from_folder", "Clip", "ClipReader", "Sampling", "read_clip",
    "FLOW_METHODS", "DEFAULTS", "Report", "extract", "PartStore", "merge",
]
