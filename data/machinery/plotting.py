"""Figure helpers shared by every stage: a headless pyplot and an atomic PNG save."""
from __future__ import annotations

from pathlib import Path

from ..io import atomic_path


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 150) -> Path:
    """Save ``fig`` as PNG atomically (:func:`tapos.data.io.atomic_path`), then close it."""
    plt = pyplot()
    path = Path(path)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path
