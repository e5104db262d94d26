"""Success rates with honest error bars: a handful of simulated episodes is a small sample."""

from __future__ import annotations

import math


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % (z = 1.96) Wilson score interval of a binomial proportion; (0, 1) for no trials.

    Wilson rather than the normal approximation: it stays inside [0, 1] and is not degenerate at 0/n or n/n,
    which is where small evaluations of robot policies often land.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def success_summary(outcomes: list[bool]) -> dict:
    """{"episodes", "successes", "success_rate", "ci95": [low, high]} of a list of episode outcomes."""
    successes, trials = sum(bool(o) for o in outcomes), len(outcomes)
    low, high = wilson_interval(successes, trials)
    return {"episodes": trials, "successes": successes,
            "success_rate": successes / trials if trials else 0.0, "ci95": [round(low, 4), round(high, 4)]}
