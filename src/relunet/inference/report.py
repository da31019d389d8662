"""`relunet evaluate --report DIR`: where a model goes wrong, not only how often.

confusion_matrix.csv, .png   counts of (true class, predicted class); a "none" column for
                             digits not read ("not a digit", or nothing found)
per_class.csv, .json         precision, recall, F1 and support of each class
mistakes.png                 the most confident mistakes, with true and predicted labels
reliability.png              how often each confidence is right (a calibrated model's
                             bars follow the diagonal), with the ECE
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from relunet.base.mnist import NUM_CLASSES
from relunet.base.table import format_table
from relunet.training.calibrate import BINS, ece, reliability

MISTAKES_SHOWN = 32
NONE = NUM_CLASSES  # the "class" of a digit not read: not a digit, or nothing found


def write_report(
    images: np.ndarray,
    truth: np.ndarray,
    probabilities: np.ndarray,
    predicted: np.ndarray,
    out: str | Path,
    title: str,
) -> tuple[dict[str, str], dict]:
    """Write the report's files into `out` for digits [n, 28, 28, 1] of classes `truth`
    [n], the model's calibrated probabilities [n, 10] and its answers `predicted` [n]
    (NONE for a digit not read); return the files by kind, and the per-class scores."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    matrix = confusion_matrix(truth, predicted)
    scores = per_class_scores(matrix)
    scores["ece"] = round(ece(probabilities, truth), 5)
    files = {
        "confusion_csv": _write_matrix_csv(matrix, out / "confusion_matrix.csv"),
        "confusion_png": _plot_matrix(matrix, out / "confusion_matrix.png", title),
        "per_class_csv": _write_scores_csv(scores, out / "per_class.csv"),
        "per_class_json": _write_json(scores, out / "per_class.json"),
        "mistakes_png": _plot_mistakes(
            images, truth, predicted, probabilities, out / "mistakes.png", title
        ),
        "reliability_png": _plot_reliability(
            probabilities, truth, scores["ece"], out / "reliability.png", title
        ),
    }
    return {kind: str(path) for kind, path in files.items()}, scores


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """counts[i, j]: images of class i predicted as j; a last column, "none", for the
    images in which no digit was found, when there are any."""
    columns = NUM_CLASSES + 1 if (predicted == NONE).any() else NUM_CLASSES
    matrix = np.zeros((NUM_CLASSES, columns), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> dict:
    """Precision, recall, F1 and support per class, their macro average over the classes
    that occur in the truth or the answers (scikit-learn's default labels), and accuracy."""
    correct = np.diag(matrix[:, :NUM_CLASSES]).astype(float)
    predicted, support = matrix[:, :NUM_CLASSES].sum(0), matrix.sum(1)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(correct), where=total > 0)
    occur = (support > 0) | (predicted > 0)  # a folder of 3s and 5s has no 7 to average
    if not occur.any():
        occur[:] = True
    classes = {
        str(c): {
            "precision": round(float(precision[c]), 4),
            "recall": round(float(recall[c]), 4),
            "f1": round(float(f1[c]), 4),
            "support": int(support[c]),
        }
        for c in range(NUM_CLASSES)
    }
    return {
        "classes": classes,
        "macro_avg": {
            k: round(float(np.mean([classes[str(c)][k] for c in np.flatnonzero(occur)])), 4)
            for k in ("precision", "recall", "f1")
        },
        "accuracy": round(float(correct.sum() / max(1, matrix.sum())), 4),
        "images": int(matrix.sum()),
    }


def format_scores(scores: dict) -> str:
    """Precision, recall, F1 and support per class, and their macro average."""
    rows = [
        [name, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", str(s["support"])]
        for name, s in scores["classes"].items()
    ]
    macro = scores["macro_avg"]
    rows.append(
        [
            "macro",
            *(f"{macro[k]:.4f}" for k in ("precision", "recall", "f1")),
            str(scores["images"]),
        ]
    )
    return format_table(["class", "precision", "recall", "f1", "support"], rows)


def _write_matrix_csv(matrix: np.ndarray, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        columns = [*map(str, range(NUM_CLASSES)), "none"][: matrix.shape[1]]
        writer.writerow(["true \\ predicted", *columns])
        writer.writerows([c, *row] for c, row in enumerate(matrix.tolist()))
    return path


def _write_scores_csv(scores: dict, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name, s in scores["classes"].items():
            writer.writerow([name, s["precision"], s["recall"], s["f1"], s["support"]])
    return path


def _write_json(value: dict, path: Path) -> Path:
    path.write_text(json.dumps(value, indent=2) + "\n")
    return path


def _plot_matrix(matrix: np.ndarray, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    shown = np.log1p(matrix)  # the diagonal dwarfs the mistakes otherwise
    ax.imshow(shown, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shown[i, j] > shown.max() / 2 else "black",
            )
    ax.set(
        xticks=range(matrix.shape[1]),
        xticklabels=[*map(str, range(NUM_CLASSES)), "none"][: matrix.shape[1]],
        yticks=range(NUM_CLASSES),
        xlabel="predicted class",
        ylabel="true class",
        title=f"Confusion matrix\n{title}",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_reliability(
    probabilities: np.ndarray, truth: np.ndarray, error: float, path: Path, title: str
) -> Path:
    """A reliability diagram: each confidence bin's accuracy against its confidence."""
    confidence, correct = probabilities.max(-1), probabilities.argmax(-1) == truth
    bins = reliability(confidence, correct)
    fig, ax = plt.subplots(figsize=(5.2, 5.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    width = 1.0 / BINS
    ax.bar(
        [c for _, c, _ in bins],
        [a for a, _, _ in bins],
        width=width * 0.9,
        color="tab:blue",
        alpha=0.8,
        label="accuracy in the bin",
    )
    for accuracy, conf, share in bins:
        ax.annotate(f"{share:.0%}", (conf, accuracy), ha="center", va="bottom", fontsize=6)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.05),
        xlabel="confidence (the probability printed)",
        ylabel="accuracy",
        title=f"Reliability, ECE {error:.4f}\n{title}",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_mistakes(
    images: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    probabilities: np.ndarray,
    path: Path,
    title: str,
) -> Path:
    """The wrongly classified images, most confident first, 8 to a row (an image with
    no digit found among them, as "none")."""
    wrong = np.flatnonzero(predicted != truth)
    wrong = wrong[np.argsort(-probabilities[wrong].max(-1))][:MISTAKES_SHOWN]
    rows = max(1, int(np.ceil(len(wrong) / 8)))
    fig, axes = plt.subplots(rows, 8, figsize=(12, 1.75 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[index, ..., 0], cmap="gray")
        guess = probabilities[index].argmax()
        said = f"said {guess}\np={probabilities[index, guess]:.2f}"
        if predicted[index] == NONE:
            said = f"not read\n(p={probabilities[index, guess]:.2f})"
        ax.set_title(f"true {truth[index]}, {said}", fontsize=8)
    fig.suptitle(f"The {len(wrong)} most confident mistakes ({title})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
