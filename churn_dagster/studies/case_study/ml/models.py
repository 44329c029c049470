"""The case study's four classifiers of future activity, each with and without upsampling of the actives.

Inputs are the ``case_study_features`` and ``case_study_labels`` tables (:mod:`churn_dagster.studies.case_study.sql.
data`). Everything a model fits (scaling, imputation medians, category levels, the upsampling draws) is
fit on the training rows only, inside one scikit-learn Pipeline that is logged and registered as a whole.

- **Counts** (clicks, likes, view time, ...) follow a power law: most users have none, a few thousands.
  They enter as log(1 + x), then standardised, so that neither the SVM's margin nor the Gaussian naive Bayes
  likelihoods are decided by a handful of heavy users (the case study standardised the raw sums).
- **Demographics**: age, registered months (and the follow count, when the leakage switch is on) are imputed
  with the training median plus a missing flag; province and gender are one-hot, a missing value being a
  category of its own (absence of demographics is itself informative: new accounts rarely fill them in).
- **Upsampling** (the case study's 4x): the active training users are drawn with replacement until they number
  ``upsample_factor`` times the originals (their notebook drew 4x *more*, 5x in all). Validation and test
  rows are the same users in both variants, so the two variants are compared on identical rows.
- **Decisions** at probability 0.5, as the case study's ``predict`` did. The upsampled variants move that
  point: they were trained on a population with more actives, which is what trades precision for recall.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import roc_auc_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from churn_dagster.studies.case_study.ml.hyperparameters import UpsamplingConfig
from churn_dagster.studies.case_study.sql.data import ACTIVITY_FEATURES, FOLLOW_COUNT

NUMERIC_DEMOGRAPHICS = ("age", "registered_months")
CATEGORIES = ("province", "gender")
MISSING = "(missing)"
VARIANTS = ("plain", "upsampled")
FAMILIES = ("svm", "naive_bayes", "decision_tree", "mlp")


@dataclass(frozen=True)
class Columns:
    """The feature columns by how a model reads them: ``counts`` (log(1 + x), then standardised), other
    ``numbers`` (training median plus a missing flag, then standardised) and ``categories`` (one-hot, a missing
    value a category of its own). The NCM tables' are :data:`NCM_COLUMNS`; an event log names its own."""

    counts: tuple[str, ...]
    numbers: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


NCM_COLUMNS = Columns(ACTIVITY_FEATURES, NUMERIC_DEMOGRAPHICS, CATEGORIES)


@dataclass(frozen=True)
class Design:
    """Feature rows (``X``, the model's input as logged), the active label, each row's user and split, and how
    the model reads each column."""

    X: pd.DataFrame
    y: np.ndarray
    split: np.ndarray
    user_id: np.ndarray
    columns: Columns = NCM_COLUMNS

    def rows(self, split: str) -> np.ndarray:
        return self.split == split


def design(features: pd.DataFrame, labels: pd.DataFrame, columns: Columns | None = None) -> Design:
    """Join the two tables on the user. They must hold the same users: anything else means they come from
    different runs. Without ``columns``, the NCM tables' (with the follow count exactly when the features
    table carries it)."""
    merged = features.merge(labels[["user_id", "split", "active"]], on="user_id", how="inner", validate="one_to_one")
    if not len(merged) == len(features) == len(labels):
        raise ValueError(f"features ({len(features)} users) and labels ({len(labels)}) share only {len(merged)} users")
    if columns is None:
        follow = (FOLLOW_COUNT,) if FOLLOW_COUNT in features else ()
        columns = Columns(ACTIVITY_FEATURES, (*NUMERIC_DEMOGRAPHICS, *follow), CATEGORIES)
    X = merged[[*columns.counts, *columns.numbers]].astype(np.float64)
    for column in columns.categories:
        X[column] = merged[column].astype(object).where(merged[column].notna(), MISSING)
    return Design(X.reset_index(drop=True), merged["active"].to_numpy(np.int64), merged["split"].to_numpy(str),
                  merged["user_id"].to_numpy(), columns)


def upsample_actives(X: pd.DataFrame, y: np.ndarray, factor: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows given (training rows, never others) plus (factor - 1) x n_active draws with replacement from
    the actives, so the actives number ``factor`` times the originals; inactive rows are untouched."""
    actives = np.flatnonzero(y == 1)
    if factor < 1:
        raise ValueError(f"upsample_factor must be at least 1, got {factor}")
    drawn = np.random.default_rng(seed).choice(actives, size=(factor - 1) * len(actives), replace=True)
    keep = np.concatenate([np.arange(len(y)), drawn])
    return X.iloc[keep].reset_index(drop=True), y[keep]


def preprocessor(columns: Columns) -> ColumnTransformer:
    """What every family's Pipeline does to its input first (fit on the training rows with the rest)."""
    log = FunctionTransformer(np.log1p, feature_names_out="one-to-one")
    return ColumnTransformer([
        ("counts", Pipeline([("log", log), ("scale", StandardScaler())]), list(columns.counts)),
        ("demographics", Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True,
                                                            keep_empty_features=True)),
                                   ("scale", StandardScaler())]), list(columns.numbers)),
        ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(columns.categories)),
    ])


def build_model(family: str, settings, columns: Columns, seed: int) -> Pipeline:
    """An unfitted Pipeline: :func:`preprocessor`, then the family's classifier (``settings``: the family's
    dataclass of :mod:`churn_dagster.studies.case_study.ml.hyperparameters`)."""
    if family == "svm":
        classifier = CalibratedClassifierCV(LinearSVC(C=settings.C, max_iter=settings.max_iter, random_state=seed),
                                            method="sigmoid", cv=settings.calibration_folds)
    elif family == "naive_bayes":
        classifier = GaussianNB(var_smoothing=settings.var_smoothing)
    elif family == "decision_tree":
        classifier = DecisionTreeClassifier(max_depth=settings.max_depth, min_samples_leaf=settings.min_samples_leaf,
                                            random_state=seed)
    elif family == "mlp":
        classifier = MLPClassifier(hidden_layer_sizes=tuple(settings.hidden_layers),
                                   learning_rate_init=settings.learning_rate, batch_size=settings.batch_size,
                                   max_iter=settings.max_epochs, alpha=settings.alpha, n_iter_no_change=5,
                                   random_state=seed)
    else:
        raise ValueError(f"unknown case-study family {family!r}; expected one of {FAMILIES}")
    return Pipeline([("features", preprocessor(columns)), ("model", classifier)])


def active_metrics(y: np.ndarray, p_active: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, precision/recall/F1 of the active class and ROC-AUC of P(active). Undefined values are NaN
    (recall and F1 without an active user, AUC with one class); precision is 0 when nobody is predicted active."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p_active, dtype=np.float64)
    if len(y) == 0 or len(y) != len(p):
        raise ValueError(f"need equal, non-zero lengths, got {len(y)} labels and {len(p)} probabilities")
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp, fn = int(np.sum(predicted & (y == 0))), int(np.sum(~predicted & (y == 1)))
    tn = len(y) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else (0.0 if tp + fn else float("nan"))
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return {"n": len(y), "accuracy": (tp + tn) / len(y), "precision_active": precision, "recall_active": recall,
            "f1_active": f1, "roc_auc": auc, "active_share": float(y.mean()),
            "predicted_active_share": float(predicted.mean()), "confusion_matrix": [[tn, fp], [fn, tp]]}


@dataclass
class VariantResult:
    """One fitted variant: the model, its metrics on the validation and test users, and its training rows."""

    model: Pipeline
    val_metrics: dict
    test_metrics: dict
    predictions: pd.DataFrame  # the test users: user_id, y, p
    train_rows: int
    train_actives: int
    original_train_actives: int
    seconds: float


def trainable(d: Design, min_per_class: int = 1) -> str | None:
    """Why nothing can be trained on ``d`` (None when it can): at least ``min_per_class`` training users of
    each class (the SVM's calibration needs one per fold), and validation and test users to score."""
    train = d.y[d.rows("train")]
    counts = [int((train == k).sum()) for k in (0, 1)]
    if min(counts) < max(1, min_per_class):
        return (f"the {len(train)} training users hold {counts[1]} active and {counts[0]} inactive users; each class "
                f"needs at least {max(1, min_per_class)}")
    empty = [s for s in ("validation", "test") if not d.rows(s).any()]
    return f"no {' and no '.join(empty)} users" if empty else None


def proba_active(model: Pipeline, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, list(model.classes_).index(1)]


def run_variant(family: str, settings, upsampling: UpsamplingConfig, d: Design, variant: str) -> VariantResult:
    """Fit one variant on the training users (upsampled or not) and score the validation and test users."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    train = d.rows("train")
    X_train, y_train = d.X[train].reset_index(drop=True), d.y[train]
    original_actives = int(y_train.sum())
    if variant == "upsampled":
        X_train, y_train = upsample_actives(X_train, y_train, upsampling.upsample_factor, upsampling.seed)
    started = time.perf_counter()
    model = build_model(family, settings, d.columns, upsampling.seed)
    with warnings.catch_warnings():
        # Stopping at max_epochs (MLP) or max_iter (SVM) is the configured budget, not an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    seconds = time.perf_counter() - started
    scored = {s: (d.y[d.rows(s)], proba_active(model, d.X[d.rows(s)])) for s in ("validation", "test")}
    y_test, p_test = scored["test"]
    predictions = pd.DataFrame({"user_id": d.user_id[d.rows("test")], "y": y_test, "p": p_test})
    return VariantResult(model, active_metrics(*scored["validation"]), active_metrics(y_test, p_test), predictions,
                         len(y_train), int(y_train.sum()), original_actives, seconds)
