"""Is a drawing a digit at all? Its distance from the space MNIST's digits span.

A classifier always answers: an X reads as "1, 93% sure". So /api/predict also says how far
the framed drawing lies from MNIST: the error of its reconstruction from the top principal
components of the training digits (framed by the same preprocessing as a drawing), against a
threshold calibrated on the MNIST test set (its 99th percentile: one real digit in a hundred
is flagged). The score does not depend on the model, so it is the same for every model on
/draw. Letters, boxes, scribbles and noise land far outside; docs/benchmarks.md records the
rates. `python -m gradscope.server.digits.typical` refits the bundled file from MNIST.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradscope.server.digits.preprocess import SIDE, preprocess

BUNDLED = Path(__file__).resolve().parent / "bundled" / "digit_space.npz"
COMPONENTS = 60  # enough to rebuild any written digit, too few to rebuild an X or a box
FIT_DIGITS = 20_000  # training digits the components are fitted on
PERCENTILE = 99.0  # of the test digits' scores: the threshold


@dataclass(frozen=True)
class DigitSpace:
    """The mean framed digit, the principal components, and the calibrated threshold."""

    mean: np.ndarray  # (784,)
    components: np.ndarray  # (k, 784), orthonormal rows
    threshold: float

    def scores(self, digits: np.ndarray) -> np.ndarray:
        """Each framed 28x28 digit's distance from the digit space (RMS pixel error x 28)."""
        z = digits.reshape(len(digits), SIDE * SIDE).astype(np.float64) - self.mean
        residual = z - (z @ self.components.T) @ self.components
        return np.sqrt(np.einsum("ij,ij->i", residual, residual))

    def judge(self, digit: np.ndarray) -> dict[str, Any]:
        """The API's answer for one framed digit: its score, the threshold, the verdict."""
        score = float(self.scores(digit[None])[0])
        return {
            "score": round(score, 4),
            "threshold": round(self.threshold, 4),
            "unlike_digits": score > self.threshold,
        }


def framed(images: np.ndarray) -> np.ndarray:
    """MNIST images (N, 784 or 28x28, 0..1) framed as the drawing path frames a drawing."""
    return np.stack([preprocess(img.reshape(SIDE, SIDE)) for img in images])


def fit(train: np.ndarray, test: np.ndarray, k: int = COMPONENTS) -> DigitSpace:
    """Fit the components on framed training digits; calibrate on the framed test digits."""
    x = framed(train).reshape(len(train), -1).astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    space = DigitSpace(mean, vt[:k], 0.0)
    threshold = float(np.percentile(space.scores(framed(test)), PERCENTILE))
    return DigitSpace(mean, vt[:k], threshold)


def save(space: DigitSpace, path: Path = BUNDLED, about: dict[str, Any] | None = None) -> None:
    """Write the space as a plain .npz (float32 arrays) and its calibration as .json."""
    np.savez_compressed(
        path,
        mean=space.mean.astype(np.float32),
        components=space.components.astype(np.float32),
        threshold=np.float64(space.threshold),
    )
    info = {"components": len(space.components), "percentile": PERCENTILE, **(about or {})}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def load(path: Path = BUNDLED) -> DigitSpace:
    """The bundled digit space (allow_pickle=False: plain arrays only)."""
    with np.load(path, allow_pickle=False) as f:
        mean = f["mean"].astype(np.float64)
        components = f["components"].astype(np.float64)
        threshold = float(f["threshold"])
    if mean.shape != (SIDE * SIDE,) or components.ndim != 2 or components.shape[1] != mean.size:
        raise ValueError(f"{path}: not a digit space (mean {mean.shape}, {components.shape})")
    return DigitSpace(mean, components, threshold)


def main(argv: list[str] | None = None) -> int:
    """Refit the bundled digit space from the MNIST files (GRADSCOPE_MNIST_DIR or the cache)."""
    from gradscope.engine.mnist import load_mnist

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else BUNDLED
    train, _ = load_mnist("train")
    test, _ = load_mnist("test")
    space = fit(train[:FIT_DIGITS], test)
    about = {
        "fit_on": f"the first {FIT_DIGITS} MNIST training digits",
        "calibrated_on": "MNIST test",
    }
    save(space, out, {**about, "threshold": space.threshold})
    print(f"wrote {out}: {len(space.components)} components, threshold {space.threshold:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
