"""tapos.extract: BNInception RGB and optical-flow features from videos to the feature cache.

Stage one of the pipeline: it writes the cache (schema tapos-features/1) that parse and tsn read.

This module's names are its public API; the other stages use only these (the submodules are
private). For stages that run the network themselves: the BNInception builder and its weights
(``build_bninception``, ``resolve_weights``, ``load_into``, ``init_random``, ``input_mean``),
optical flow as the flow stream sees it (``FlowComputer``, ``FLOW_METHODS``), the input format
(``CROP``, ``FLOW_SIZE``, ``FLOW_STACK``, ``IN_CHANNELS``), and
what a cache's weights description means (``weights_spec``, ``CROSS_MODALITY``). Finding videos
and instances is contract, in ``tapos.data.videos`` (re-exported here).

Extracting a new clip exactly like an existing cache (the same weights, flow method and
sampling, so that a model trained on the cache can read it; ``tapos-parse video`` does):
``extract_like(video, like, out, device=..., **overrides) -> ClipFeatures``, where ``like`` is
a cache's path, its ``ExtractionSettings`` or a ``Reference`` (the settings and how errors name
them); ``options_like(like, ...)`` gives the ``extract`` options it uses. ``.importlinter``
holds the other stages to this module: none of them imports a submodule of ``tapos.extract``.
"""
from tapos.data.videos import KEY_SEPARATOR, Clip, clips_from_annotations, clips_from_folder

from .backbone import FEATURE_DIM, PRECISIONS, input_mean
from .bninception import BNInception, build_bninception, cross_modality_init, fold_batchnorm
from .decode import ClipReader, Sampling, read_clip
from .flow import FLOW_METHODS, FlowComputer
from .flow_methods import FlowMethod, register_flow
from .inputs import CROP, FLOW_SIZE, FLOW_STACK, IN_CHANNELS
from .like import ClipFeatures, Reference, extract_like, options_like
from .pipeline import DEFAULTS, Report, extract
from .store import PartStore, merge
from .weights import CROSS_MODALITY, init_random, load_into, resolve_weights, weights_spec

__all__ = [
    "KEY_SEPARATOR", "Clip", "clips_from_annotations", "clips_from_folder", "FEATURE_DIM", "PRECISIONS",
    "input_mean", "BNInception", "build_bninception", "cross_modality_init", "fold_batchnorm", "ClipReader",
    "Sampling", "read_clip", "FLOW_METHODS", "FlowComputer", "FlowMethod", "register_flow", "CROP", "FLOW_SIZE", "FLOW_STACK", "IN_CHANNELS", "DEFAULTS", "Report", "extract",
    "ClipFeatures", "Reference", "extract_like", "options_like",
    "PartStore", "merge", "CROSS_MODALITY", "init_random", "load_into", "resolve_weights", "weights_spec",
]
