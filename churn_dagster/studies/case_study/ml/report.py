"""Our case-study results beside the figures the case study reported, each row labelled with whose it is.

The case study (jing042323, "NetEase Cloud Music Case Study", 2021) reports its population figures in the post
and its model results in the notebook the post links ("Appendix II", jing042323/Case-Study,
``NCM/Appendix_II_Activity_Intensity_Prediction.html``). Its published models are logistic regression, an
RBF-kernel SVM, a random forest and a 28-10-6 neural network; the post's text also names naive Bayes and a
decision tree, whose results were not published. It gives no ROC-AUC. Its test figures are not comparable
with ours, for reasons read off its code:

- the actives were upsampled (4x more drawn, 5x in all) *before* the train/validation/test split, so test
  rows are duplicates of training rows and the test set is 59% active;
- the target period's impression count (days 11-30) was an input feature;
- users without an impression in days 11-30 were dropped, not labelled inactive; active meant CTR >= the
  mean over all users, not > a mean fit on training users;
- a 10% sample of the upsampled rows was used (the final models fit on its 95,075 training and validation rows).

Nothing here knows about Dagster or MLflow; inputs are the ``metrics.json`` files the model assets write.
"""

from __future__ import annotations

import math

import pandas as pd

FAMILY_LABELS = {"svm": "Linear SVM (calibrated)", "naive_bayes": "Gaussian naive Bayes",
                 "decision_tree": "Decision tree", "mlp": "MLP"}
VARIANT_LABELS = {"plain": "no upsampling", "upsampled": "actives upsampled"}
OURS = "ours"
THEIRS = "case study (theirs, real NCM log)"
# Their threshold, active share and upsampling, as the post states them.
THEIR_THRESHOLD = 0.02338
THEIR_ACTIVE_SHARE = 0.1916  # 19.16% of users >= 2.338% over the month (their Appendix I; the post: "nearly 20%")
THEIR_FACTOR = "4x more actives, before the split"
# Their test confusion matrices [[TN, FP], [FN, TP]] (Appendix II), from which the metrics below are computed
# (the notebook prints them rounded to two decimals).
THEIR_CONFUSION = {
    "Logistic regression": [[6736, 3052], [3598, 10383]],
    "SVM (RBF kernel, C=100)": [[7027, 2791], [3798, 10153]],
    "Random forest (1000 trees, depth 10)": [[5712, 4106], [1820, 12131]],
    "Neural network (28-10-6 ReLU)": [[5670, 4129], [2237, 11733]],
}
COLUMNS = ["model", "variant", "whose", "accuracy", "precision (active)", "recall (active)", "F1 (active)", "ROC-AUC",
           "test users", "test active share", "training rows", "training active share"]


def metrics_from_confusion(cm: list[list[int]]) -> dict:
    (tn, fp), (fn, tp) = cm
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {"accuracy": (tp + tn) / (tn + fp + fn + tp), "precision_active": precision, "recall_active": recall,
            "f1_active": 2 * precision * recall / (precision + recall), "n": tn + fp + fn + tp,
            "active_share": (fn + tp) / (tn + fp + fn + tp)}


def their_rows() -> list[dict]:
    rows = []
    for model, cm in THEIR_CONFUSION.items():
        m = metrics_from_confusion(cm)
        rows.append({"model": model, "variant": "actives upsampled before the split", "whose": THEIRS,
                     "accuracy": m["accuracy"], "precision (active)": m["precision_active"],
                     "recall (active)": m["recall_active"], "F1 (active)": m["f1_active"], "ROC-AUC": math.nan,
                     # their final models were fit on the training and validation rows together
                     "test users": m["n"], "test active share": m["active_share"], "training rows": 95075,
                     # their split was stratified by the label: the training share is the test share
                     "training active share": m["active_share"]})
    return rows


def our_rows(model_metrics: dict[str, dict]) -> list[dict]:
    """One row per family and variant from each model asset's ``metrics.json`` (``model_metrics[family]``);
    a family that trained nothing (a population too small for two classes) is one row saying why."""
    rows = []
    for family, metrics in model_metrics.items():
        if not metrics.get("variants"):
            rows.append({"model": FAMILY_LABELS[family], "variant": f"not trained: {metrics.get('reason', '?')}",
                         "whose": OURS})
            continue
        for variant, result in metrics["variants"].items():
            test = result["test"]
            rows.append({"model": FAMILY_LABELS[family], "variant": VARIANT_LABELS[variant], "whose": OURS,
                         "accuracy": test["accuracy"], "precision (active)": test["precision_active"],
                         "recall (active)": test["recall_active"], "F1 (active)": test["f1_active"],
                         "ROC-AUC": test["roc_auc"], "test users": test["n"], "test active share": test["active_share"],
                         "training rows": result["train_rows"],
                         "training active share": result["train_actives"] / result["train_rows"]})
    return rows


def comparison_table(model_metrics: dict[str, dict]) -> pd.DataFrame:
    """Ours (every family and variant) then theirs, with the columns of :data:`COLUMNS`."""
    return pd.DataFrame(our_rows(model_metrics) + their_rows(), columns=COLUMNS)


def decisions_table(model_metrics: dict[str, dict]) -> pd.DataFrame:
    """What the registry did with each trained variant, in one line each (or why a family trained nothing)."""
    rows = []
    for family, metrics in model_metrics.items():
        if not metrics.get("variants"):
            rows.append({"model": FAMILY_LABELS[family], "variant": "", "registered version": "not registered",
                         "decision": f"not trained: {metrics.get('reason', '?')}"})
        for variant, entry in metrics.get("registered", {}).items():
            rows.append({"model": FAMILY_LABELS[family], "variant": VARIANT_LABELS[variant],
                         "registered version": entry["version"] or "not registered", "decision": entry["decision"]})
    return pd.DataFrame(rows, columns=["model", "variant", "registered version", "decision"])


def population_table(threshold: dict, labels: pd.DataFrame) -> pd.DataFrame:
    """The target definition side by side (``labels``: the ``case_study_labels`` table). Their model's users
    all had a target-period impression, so the comparable share is the one among ours that have one too."""
    ours = threshold.get("threshold")
    with_ctr = labels[labels["target_ctr"].notna()]
    share = lambda frame: f"{frame['active'].mean():.2%}" if len(frame) else "undefined"  # noqa: E731
    return pd.DataFrame([
        {"figure": "CTR threshold", OURS: "undefined" if ours is None else f"{ours:.3%}", THEIRS: f"{THEIR_THRESHOLD:.3%}"},
        {"figure": "threshold fit on", OURS: f"{threshold.get('fitted_on_users', 0):,} training users",
         THEIRS: "every user, whole month"},
        {"figure": "users", OURS: f"{len(labels):,}", THEIRS: "628,788 (their model)"},
        {"figure": "active share", OURS: share(labels), THEIRS: f"{THEIR_ACTIVE_SHARE:.2%} (whole month)"},
        {"figure": "active share, users with a CTR", OURS: share(with_ctr), THEIRS: "22.25% (their model)"},
        {"figure": "upsampling", OURS: "training actives only", THEIRS: THEIR_FACTOR},
    ])
