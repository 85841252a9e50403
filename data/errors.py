"""Error types shared by every stage.

Every error a user can cause (a bad file, a missing key, a malformed annotation) is a
``TaposError`` whose message is one line naming the file and the problem; the command-line
tools print it without a traceback and exit non-zero.
"""


class TaposError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""


class AnnotationError(TaposError):
    """A malformed annotation file or instance."""


class FeatureCacheError(TaposError):
    """A feature cache that does not follow the schema or disagrees with the annotations."""


class PredictionError(TaposError):
    """A structurally bad prediction file."""


class UnsafePickleError(TaposError):
    """A pickle that holds something other than plain containers and numbers."""
