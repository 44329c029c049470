"""How much any model could add over the reference row on a generated event log: the log's ceiling.

``bench/event_log_models.py`` measures what the component's models add over gradient boosting on recency,
frequency and monetary value. This script asks what the log lets any model add: it runs the generator's own
day step (``synth/event_logs.py``) for the same users, keeps each user's hidden state at the end of their
observation window, and fits the same gradient boosting (``training/ml/classical.fit_xgboost``, default
hyperparameters, early stopping on a validation split) on richer and richer inputs:

- ``reference``: recency, events, active days and value sum (the reference row's four features);
- ``daily panel``: the reference plus each observation day's events and mean value relative to the user's
  own mean, the share of active days on the most frequent weekday and the last value's ratio to the mean:
  everything the log shows of order and spacing, laid out for a flexible learner;
- ``+ habit (hidden)``: the panel plus whether the user has a weekly habit, which the log only hints at;
- ``+ satisfaction (hidden)``: the panel, the habit and the satisfaction on the window's last day;
- ``oracle``: the churn probability from 200 forward simulations of each user's full hidden state (whether
  they have already left included): the Bayes ceiling no model of the log can reach.

The gap between ``daily panel`` and ``reference`` bounds, up to what the learner can find with this many
users, what the order and spacing of the events carry. Prints a line per seed and one ``RESULT {json}``.

    python -m bench.event_log_ceiling [--shapes purchases,ratings] [--seeds 0,1,2] [--users 100000]
        [--days 150]
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churn_dagster.synth.event_logs import SHAPES, draw_users, expand, purchase_means, ratings, step
from churn_dagster.training.ml.classical import fit_xgboost

OBSERVATION = LABEL = 14
DRAWS = 200
ROWS = ("reference", "daily panel", "+ habit (hidden)", "+ satisfaction (hidden)", "oracle")


def simulate(shape: str, users: int, days: int, seed: int) -> dict:
    """The generator's users: events per day, satisfaction per day, and the hidden state at the end of
    each user's observation window."""
    rng = np.random.default_rng([seed, 0, SHAPES.index(shape)])  # the generator's stream for its first chunk
    traits, state = draw_users(rng, users, days, 0.35)
    events, mood = np.zeros((users, days), np.int64), np.zeros((users, days), np.float32)
    snapshot = state.take(np.arange(users))
    for day in range(days):
        events[:, day] = step(rng, traits, state, day)
        mood[:, day] = state.level
        at = traits.signup + OBSERVATION - 1 == day
        for name in ("level", "quiet", "gone"):
            getattr(snapshot, name)[at] = getattr(state, name)[at]
    return {"traits": traits, "snapshot": snapshot, "events": events, "mood": mood, "rng": rng}


def forward_churn(sim: dict, users: np.ndarray, seed: int) -> np.ndarray:
    """P(no event in the label window) from ``DRAWS`` simulations of each user's hidden state."""
    rng = np.random.default_rng(seed + 10_000)
    copies = np.repeat(users, DRAWS)
    traits, state = sim["traits"].take(copies), sim["snapshot"].take(copies)
    seen = np.zeros(len(copies), bool)
    for t in range(LABEL):
        seen |= step(rng, traits, state, traits.signup + OBSERVATION + t) > 0
    return 1 - seen.reshape(-1, DRAWS).mean(1)


def feature_sets(shape: str, sim: dict, users: np.ndarray) -> dict[str, pd.DataFrame]:
    """The learner's inputs for ``users`` (see the module docstring)."""
    traits, events, rng = sim["traits"], sim["events"], sim["rng"]
    offset = traits.signup[users][:, None] + np.arange(OBSERVATION)
    counts = np.take_along_axis(events[users], offset, 1)
    who, day = expand(counts)
    feeling = sim["mood"][users[who], traits.signup[users[who]] + day]
    if shape == "purchases":
        values = rng.gamma(4.0, purchase_means(rng, len(users), who, feeling) / 4.0)
    else:
        values = ratings(rng, len(users), who, feeling)
    value_sum = np.zeros(counts.shape)
    np.add.at(value_sum, (who, day), values)
    active = counts > 0
    last = np.where(active, np.arange(OBSERVATION), -1).max(1)
    mean = value_sum.sum(1) / counts.sum(1)
    reference = pd.DataFrame({"recency_days": OBSERVATION - 1 - last, "events_total": counts.sum(1),
                              "active_days": active.sum(1), "value_sum": value_sum.sum(1)})
    weekday = offset % 7
    top = np.stack([(active & (weekday == k)).sum(1) for k in range(7)], 1).max(1) / active.sum(1)
    relative = np.where(active, value_sum / np.maximum(counts, 1) / mean[:, None], np.nan)
    last_value = relative[np.arange(len(users)), last]
    panel = pd.concat([reference, pd.DataFrame(counts, columns=[f"events_{d}" for d in range(OBSERVATION)]),
                       pd.DataFrame(relative, columns=[f"value_{d}" for d in range(OBSERVATION)]),
                       pd.DataFrame({"top_weekday_share": top, "last_value_ratio": last_value})], axis=1)
    habit = panel.assign(regular=traits.regular[users].astype(float))
    return {"reference": reference, "daily panel": panel, "+ habit (hidden)": habit,
            "+ satisfaction (hidden)": habit.assign(satisfaction=sim["snapshot"].level[users])}


def run_one(shape: str, users: int, days: int, seed: int) -> dict[str, float]:
    sim = simulate(shape, users, days, seed)
    signup, events = sim["traits"].signup, sim["events"]
    labelled = np.nonzero(signup + OBSERVATION + LABEL <= days)[0]
    label_days = signup[labelled][:, None] + OBSERVATION + np.arange(LABEL)
    churned = (np.take_along_axis(events[labelled], label_days, 1).sum(1) == 0).astype(int)
    part = np.random.default_rng(seed).random(len(labelled))
    train, val, test = part < 0.45, (part >= 0.45) & (part < 0.55), part >= 0.55
    aucs = {}
    for name, X in feature_sets(shape, sim, labelled).items():
        model = fit_xgboost(X[train], churned[train], X[val], churned[val])
        aucs[name] = roc_auc_score(churned[test], model.predict_proba(X[test])[:, 1])
    aucs["oracle"] = roc_auc_score(churned[test], forward_churn(sim, labelled[test], seed))
    aucs["test users"], aucs["churn rate"] = int(test.sum()), float(churned.mean())
    return aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="purchases,ratings")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=150)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for shape in args.shapes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            aucs = run_one(shape, args.users, args.days, seed)
            print(shape, seed, {k: round(v, 4) for k, v in aucs.items()}, flush=True)
            for name in ROWS:
                results.setdefault(shape, {}).setdefault(name, []).append(aucs[name])
    for shape, rows in results.items():
        ref = rows["reference"]
        for name in ROWS:
            gains = [a - r for a, r in zip(rows[name], ref)]
            spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
            print(f"| {shape} | {name} | {statistics.mean(rows[name]):.4f} | {statistics.mean(gains):+.4f} ± "
                  f"{spread:.4f} |")
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
