"""PNG montage of a synthetic subject: one axial slice per modality plus the label overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainmvp_nnunet.data.synth import Subject

LABEL_COLOURS = {1: (0.9, 0.1, 0.1), 2: (0.1, 0.8, 0.2), 3: (1.0, 0.85, 0.0)}  # NCR red, ED green, ET yellow
LABEL_NAMES = {1: "NCR", 2: "ED", 3: "ET"}


def _axial_index(subject: Subject) -> int:
    """Slice through the tumour centre if there is one, else the middle of the brain."""
    if subject.label is not None and subject.label.any():
        return int(np.argwhere(subject.label > 0)[:, 2].mean().round())
    image = next(iter(subject.images.values()))
    return int(np.argwhere(image > 0)[:, 2].mean().round())


def save_preview(path: Path, subject: Subject, title: str) -> Path:
    """Write ``path`` (PNG): an axial slice of every available modality and the label overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = _axial_index(subject)
    panels = list(subject.images.items())
    n = len(panels) + (1 if subject.label is not None else 0)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 3.4), squeeze=False)
    # Radiological display: anterior up, patient's right on the viewer's left.
    def show(ax: plt.Axes, image: np.ndarray) -> None:
        ax.imshow(np.flipud(image[:, :, z].T)[:, ::-1], cmap="gray", vmin=0,
                  vmax=float(np.percentile(image[image > 0], 99.5)) if (image > 0).any() else 1.0)
        ax.axis("off")

    for ax, (name, image) in zip(axes[0], panels, strict=False):
        show(ax, image)
        ax.set_title(name.upper())
    if subject.label is not None:
        ax = axes[0][-1]
        base = subject.images.get("flair", panels[0][1])
        show(ax, base)
        label = np.flipud(subject.label[:, :, z].T)[:, ::-1]
        overlay = np.zeros(label.shape + (4,))
        for value, colour in LABEL_COLOURS.items():
            overlay[label == value] = (*colour, 0.55)
        ax.imshow(overlay)
        ax.set_title("labels: " + ", ".join(f"{LABEL_NAMES[v]}" for v in LABEL_COLOURS))
    fig.suptitle(f"{title} (axial slice {z})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)
