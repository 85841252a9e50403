"""The crash-safe parts ``tapos-extract`` writes: they are contract (``tapos-data import-features``
writes them too), so they live in :mod:`tapos.data.parts`; re-exported here."""
from tapos.data.parts import INDEX_ATTR, Claim, PartStore, failures_path, merge, parts_dir, write_failures

__all__ = ["INDEX_ATTR", "Claim", "PartStore", "failures_path", "merge", "parts_dir", "write_failures"]
