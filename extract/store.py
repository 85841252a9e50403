"""The crash-safe parts ``tapos-extract`` writes: they are contract (``tapos-data import-features``
writes them too), so they live in :mod:`tapos.data.parts`; re-exported here, ``merge`` with its
progress display."""
from tapos.data import parts
from tapos.data.machinery.progress import track
from tapos.data.parts import INDEX_ATTR, Claim, PartStore, failures_path, parts_dir, write_failures

__all__ = ["INDEX_ATTR", "Claim", "PartStore", "failures_path", "merge", "parts_dir", "write_failures"]


def merge(index_path, out_path, progress: bool = True) -> int:
    """:func:`tapos.data.parts.merge`, showing its progress unless ``progress`` is False."""
    return parts.merge(index_path, out_path, lambda keys: track(keys, desc="merge", unit="inst", enabled=progress))
