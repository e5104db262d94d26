"""Success rate against training step, with the 95 % intervals (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path


def plot_success_vs_step(series: dict[str, list[tuple[int, float, float, float]]], path: str | Path,
                         title: str = "success rate vs training step") -> Path:
    """series: label -> [(step, rate, ci_low, ci_high), ...] (one label per task, plus "all")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for label, points in sorted(series.items()):
        points = sorted(points)
        steps = [p[0] for p in points]
        rates = [p[1] for p in points]
        below = [p[1] - p[2] for p in points]
        above = [p[3] - p[1] for p in points]
        axes.errorbar(steps, rates, yerr=[below, above], marker="o", capsize=3, label=label)
    axes.set_xlabel("training step")
    axes.set_ylabel("success rate (95 % Wilson interval)")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
