"""How much of the case study's published accuracy is its protocol: our case-study tables evaluated under the
case study's own protocol, step by step back to ours (docs/MODELS.md, "Case study: active users").

    python -m bench.case_study_protocols --data-dir DIR [--sample 0.1]

DIR holds what ``case_study_job`` wrote (``case_study/features``, ``case_study/labels``). The case study's
protocol, read off its notebook: users with an impression in days 11-30 only; active = CTR >= the mean over
all of them; inputs include that period's impression count (and the follow count); the actives drawn 4x
more with replacement (5x in all) *before* a stratified 60/20/20 split; a 10% sample of the upsampled rows.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from churn_dagster.studies.case_study.ml import models as cs
from churn_dagster.studies.case_study.ml.hyperparameters import MlpConfig, NaiveBayesConfig, SvmConfig, TreeConfig
from churn_dagster.studies.case_study.sql.data import ACTIVITY_FEATURES

SETTINGS = {"svm": SvmConfig(), "naive_bayes": NaiveBayesConfig(), "decision_tree": TreeConfig(), "mlp": MlpConfig()}
SEED = 1


def _pipeline(family: str, counts: list[str], X: pd.DataFrame) -> Pipeline:
    """Our preprocessing and classifier, with ``counts`` (which may hold the leaking column) as the counts."""
    numeric = tuple(c for c in ("age", "registered_months", "follow_count") if c in X)
    return cs.build_model(family, SETTINGS[family], cs.Columns(tuple(counts), numeric, cs.CATEGORIES), SEED)


def their_protocol(table: pd.DataFrame, leak: bool, upsample_first: bool, sample: float) -> dict[str, dict]:
    """Test metrics of every family under the case study's protocol (``leak``: the target period's impression
    count is an input; ``upsample_first``: upsampling before the split, as they did, else on training rows)."""
    data = table[table["target_ctr"].notna()].reset_index(drop=True)
    y = (data["target_ctr"] >= data["target_ctr"].mean()).to_numpy(np.int64)
    counts = [*ACTIVITY_FEATURES, *(["target_impressions"] if leak else [])]
    X = data[[*counts, "age", "registered_months", *cs.CATEGORIES]].copy()
    X[list(cs.CATEGORIES)] = X[list(cs.CATEGORIES)].astype(object).where(X[list(cs.CATEGORIES)].notna(), cs.MISSING)
    if upsample_first:
        X, y = cs.upsample_actives(X, y, factor=5, seed=SEED)
        keep = np.random.default_rng(SEED).random(len(y)) < sample
        X, y = X[keep].reset_index(drop=True), y[keep]
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, random_state=SEED, stratify=y)
    _, X_test, _, y_test = train_test_split(X_rest, y_rest, test_size=0.5, random_state=SEED, stratify=y_rest)
    if not upsample_first:
        X_train, y_train = cs.upsample_actives(X_train.reset_index(drop=True), y_train, factor=5, seed=SEED)
    out = {}
    for family in cs.FAMILIES:
        model = _pipeline(family, counts, X_train).fit(X_train, y_train)
        out[family] = cs.active_metrics(y_test, cs.proba_active(model, X_test))
    return out


def ours(features: pd.DataFrame, labels: pd.DataFrame) -> dict[str, dict]:
    from churn_dagster.studies.case_study.ml.hyperparameters import UpsamplingConfig

    d = cs.design(features, labels)
    return {f: cs.run_variant(f, SETTINGS[f], UpsamplingConfig(), d, "upsampled").test_metrics for f in cs.FAMILIES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--sample", type=float, default=0.1, help="share of the upsampled rows kept (theirs: 0.1)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)  # the MLP's epoch budget, as in the assets
    features = pd.read_parquet(args.data_dir / "case_study" / "features" / "data.parquet")
    labels = pd.read_parquet(args.data_dir / "case_study" / "labels" / "data.parquet")
    table = features.merge(labels[["user_id", "target_impressions", "target_ctr"]], on="user_id")
    rows = {
        "theirs: upsampled before the split, target impressions as input": their_protocol(table, True, True, args.sample),
        "theirs, without the target impressions": their_protocol(table, False, True, args.sample),
        "theirs, without them, upsampled after the split": their_protocol(table, False, False, 1.0),
        "ours (every user seen in days 1-10, threshold from training users)": ours(features, labels),
    }
    print("| protocol | model | test users | test active share | accuracy | precision | recall | F1 | ROC-AUC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, by_family in rows.items():
        for family, m in by_family.items():
            print(f"| {name} | {family} | {m['n']:,} | {m['active_share']:.3f} | {m['accuracy']:.4f} | "
                  f"{m['precision_active']:.4f} | {m['recall_active']:.4f} | {m['f1_active']:.4f} | {m['roc_auc']:.4f} |")


if __name__ == "__main__":
    main()
