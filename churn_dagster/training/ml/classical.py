"""Logistic regression and XGBoost on the KPI aggregates, for the binary and the five-level target.

Every statistic is fit on the training rows only: the imputation medians and scaling of the logistic
regression live inside its Pipeline and XGBoost learns its own splits; the validation rows serve only as
XGBoost's early-stopping set.

- Missing values: the logistic regression imputes training medians (and scales, since its penalty and
  solver assume comparable feature scales). XGBoost gets the NaNs as they are: it learns a default branch
  per split, which keeps "demographics missing" informative instead of blending it into the median.
- Class weights: none by default. AUC is rank-based and barely moves with weighting; the reference
  accuracy/F1 figures come from unweighted models at threshold 0.5; and unweighted models keep calibrated
  probabilities, which downstream risk scores read as probabilities. ``balanced=True`` reweights classes
  inversely to their training frequency when minority-class recall matters more than calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from xgboost import XGBClassifier

from churn_dagster.domain.engagement import N_LEVELS, Thresholds, level_labels
from churn_dagster.stages.tensors.ml.data import LABEL_COMPONENTS, n_outputs
from churn_dagster.training.ml.hyperparameters import LogisticConfig, XGBConfig

# Never features: the key, the partition key, the leakage-check timestamp (an absolute time, which would
# let a model tell cohorts apart rather than behaviours), and label-side names in case labels are joined in.
IDENTIFIER_COLUMNS = ("user_id", "cohort_day", "last_impression_ms")
LABEL_COLUMNS = ("split", "churned", "level", "score", "frequency", "quality_raw")
EXCLUDED_COLUMNS = IDENTIFIER_COLUMNS + LABEL_COLUMNS


def kpi_feature_columns(kpi: pd.DataFrame) -> list[str]:
    """Every numeric (or boolean) column of the KPI table except :data:`EXCLUDED_COLUMNS`, in table order."""
    return [
        c for c in kpi.columns
        if c not in EXCLUDED_COLUMNS
        and (pd.api.types.is_numeric_dtype(kpi[c]) or pd.api.types.is_bool_dtype(kpi[c]))
    ]


@dataclass(frozen=True)
class KpiDesign:
    """Feature matrix, row-aligned with ``user_id``, ``split`` and the label-period components of each user
    (``labels``: churned, frequency, impressions, quality_raw), from which a target is derived."""

    X: pd.DataFrame
    split: np.ndarray
    user_id: np.ndarray
    labels: pd.DataFrame

    @property
    def churned(self) -> np.ndarray:
        return self.labels["churned"].to_numpy(np.int64)

    def target(self, name: str, thresholds: Thresholds | None = None) -> np.ndarray:
        """Churn, or the level under a protocol's ``thresholds``."""
        n_outputs(name)
        if name == "binary":
            return self.churned
        if thresholds is None:
            raise ValueError("level labels need the thresholds of the protocol's training users")
        return level_labels(self.labels, thresholds)

    def rows(self, split: str) -> np.ndarray:
        return self.split == split


def kpi_design(kpi: pd.DataFrame, labels: pd.DataFrame) -> KpiDesign:
    """Join the KPI table with labels (``user_id``, ``split`` and the label components, e.g. the
    ``label_scores`` table or a tensor folder's ``users.parquet``). Both must hold exactly the same users:
    a user in one and not the other means the tables come from different runs, which is an error."""
    components = labels[["user_id", "split", *LABEL_COMPONENTS]]
    merged = kpi[["user_id"]].merge(components, on="user_id", how="inner", validate="one_to_one")
    if not len(merged) == len(kpi) == len(labels):
        raise ValueError(f"KPI rows ({len(kpi)}) and label rows ({len(labels)}) share only {len(merged)} users")
    return KpiDesign(
        X=kpi[kpi_feature_columns(kpi)].astype(np.float64).reset_index(drop=True),
        split=merged["split"].to_numpy(str),
        user_id=merged["user_id"].to_numpy(),
        labels=merged[list(LABEL_COMPONENTS)].reset_index(drop=True),
    )


def fit_logistic(
    X_train: pd.DataFrame, y_train: np.ndarray, balanced: bool = False, config: LogisticConfig = LogisticConfig()
) -> Pipeline:
    """Median imputation, standardisation and an L2 logistic regression (multinomial for the levels),
    all fit on the rows given. Features whose training values are all missing are kept and set to 0,
    so the coefficients stay aligned with the feature names."""
    model = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=config.C, max_iter=config.max_iter, class_weight="balanced" if balanced else None)),
        ]
    )
    return model.fit(X_train, y_train)


PLACEHOLDER_WEIGHT = 1e-6


def fit_xgboost(
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    config: XGBConfig = XGBConfig(),
    balanced: bool = False,
    n_classes: int | None = None,
) -> XGBClassifier:
    """Gradient-boosted trees with early stopping on the validation log-loss; ``predict_proba`` of the
    returned estimator uses the best iteration.

    XGBoost's classifier needs every class 0..K-1 among its training labels (``n_classes`` = K: 2 for
    churn, 5 for the levels; by default the largest label + 1). A class absent from the training rows (a
    level nobody reached in a small training set) gets one placeholder row, a copy of the first training row
    with a weight of 1e-6, so the model keeps K outputs and gives that class a negligible probability."""
    y_train = np.asarray(y_train, dtype=np.int64)
    k = n_classes or int(y_train.max()) + 1
    weights = compute_sample_weight("balanced", y_train) if balanced else np.ones(len(y_train))
    missing = sorted(set(range(k)) - set(np.unique(y_train).tolist()))
    if missing:
        X_train = pd.concat([X_train, X_train.iloc[[0] * len(missing)]], ignore_index=True)
        y_train = np.concatenate([y_train, missing])
        weights = np.concatenate([weights, np.full(len(missing), PLACEHOLDER_WEIGHT)])
    multiclass = k > 2
    model = XGBClassifier(
        n_estimators=config.n_estimators,
        learning_rate=config.learning_rate,
        max_depth=config.max_depth,
        subsample=config.subsample,
        colsample_bytree=config.colsample_bytree,
        min_child_weight=config.min_child_weight,
        early_stopping_rounds=config.early_stopping_rounds,
        objective="multi:softprob" if multiclass else "binary:logistic",
        eval_metric="mlogloss" if multiclass else "logloss",
        tree_method="hist",
        random_state=config.seed,
        n_jobs=config.n_jobs,
    )
    # A level absent from training (possible in a small cohort) cannot be scored by early stopping either.
    seen = np.isin(np.asarray(y_val, dtype=np.int64), np.unique(y_train))
    X_val, y_val = X_val[seen], np.asarray(y_val)[seen]
    val_weights = [compute_sample_weight("balanced", y_val)] if balanced else None
    model.fit(X_train, y_train, sample_weight=weights, eval_set=[(X_val, y_val)],
              sample_weight_eval_set=val_weights, verbose=False)
    return model


def predict_proba(model: Pipeline | XGBClassifier, X: pd.DataFrame, target: str) -> np.ndarray:
    """P(churn) ``[N]`` for ``"binary"``; ``[N, 5]`` for ``"level"``, with a zero column for any level
    the model never saw in training (so the shape does not depend on the training sample)."""
    proba = model.predict_proba(X)
    if target == "binary":
        return proba[:, list(model.classes_).index(1)]
    full = np.zeros((len(X), N_LEVELS))
    full[:, np.asarray(model.classes_, dtype=np.int64)] = proba
    return full
