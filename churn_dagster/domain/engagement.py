"""The engagement score and its five levels (SPEC.md "Targets"), in one place for every stage that needs them.

Score = 0.3·F + 0.4·I + 0.3·Q over the label period, with F = active days / label days, I = min(impressions
/ P95, 1) and Q = min(Qraw / P95, 1). The two P95 thresholds are fit on the active users of a *training
population* and then applied, unchanged, to every user labelled with them: the per-cohort view in
``label_scores`` fits them on the cohort's training split, and each model fits them on the training users
of its own protocol (see ``studies/churn/ml/experiments.py``), so a test cohort never shapes its own levels.

Plain NumPy, so the label asset, the models and the tests share one implementation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

LEVEL_NAMES = ("Churned", "At-Risk", "Regular", "Engaged", "Champion")
N_LEVELS = len(LEVEL_NAMES)
# Upper bounds (inclusive) of levels 1..3; a score above the last is a Champion.
LEVEL_UPPER_BOUNDS = (0.3, 0.5, 0.7)
# A score is rounded before its level is taken: F = 1, I = 1, Q = 0 is exactly 0.7 (Engaged), which floating
# point would otherwise compute as 0.7000000000000001 (Champion).
SCORE_DECIMALS = 10


class ThresholdsUndefined(ValueError):
    """No active user in the training population: the P95 thresholds do not exist."""


@dataclass(frozen=True)
class Thresholds:
    """P95 caps of intensity and quality and the population they were fit on."""

    p95_impressions: float
    p95_quality_raw: float
    fitted_on_users: int
    fitted_on: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Thresholds:
        return cls(float(d["p95_impressions"]), float(d["p95_quality_raw"]), int(d["fitted_on_users"]), str(d["fitted_on"]))


def fit_thresholds(impressions, quality_raw, churned, fitted_on: str) -> Thresholds:
    """P95 (linear interpolation, as DuckDB's ``quantile_cont``) over the active users given: pass the
    training population's rows only."""
    active = ~np.asarray(churned, dtype=bool)
    if not active.any():
        raise ThresholdsUndefined(f"no active user in {fitted_on}: the P95 thresholds of the engagement score are undefined")
    imp = np.asarray(impressions, dtype=np.float64)[active]
    q = np.asarray(quality_raw, dtype=np.float64)[active]
    return Thresholds(float(np.quantile(imp, 0.95)), float(np.quantile(q, 0.95)), int(active.sum()), fitted_on)


def _cap(x: np.ndarray, p95: float) -> np.ndarray:
    """min(x / P95, 1); a zero P95 (no training user clicked) maps any positive x to 1 and zero to 0."""
    return np.minimum(x / p95, 1.0) if p95 > 0 else (x > 0).astype(np.float64)


def score_components(frequency, impressions, quality_raw, churned, t: Thresholds) -> dict[str, np.ndarray]:
    """Intensity, quality, score and level of each user under thresholds ``t``."""
    churned = np.asarray(churned, dtype=bool)
    intensity = _cap(np.asarray(impressions, dtype=np.float64), t.p95_impressions)
    quality = _cap(np.asarray(quality_raw, dtype=np.float64), t.p95_quality_raw)
    score = np.round(0.3 * np.asarray(frequency, dtype=np.float64) + 0.4 * intensity + 0.3 * quality, SCORE_DECIMALS)
    return {"intensity": intensity, "quality": quality, "score": score, "level": levels(score, churned)}


def levels(score, churned) -> np.ndarray:
    """0 Churned; then (0, 0.3] At-Risk, (0.3, 0.5] Regular, (0.5, 0.7] Engaged, (0.7, 1] Champion."""
    level = 1 + np.searchsorted(np.asarray(LEVEL_UPPER_BOUNDS), np.asarray(score, dtype=np.float64), side="left")
    return np.where(np.asarray(churned, dtype=bool), 0, level).astype(np.int64)


def level_labels(frame, t: Thresholds) -> np.ndarray:
    """Levels of the users of ``frame`` (columns ``frequency``, ``impressions``, ``quality_raw``,
    ``churned``) under ``t``."""
    return score_components(frame["frequency"], frame["impressions"], frame["quality_raw"], frame["churned"], t)["level"]
