"""Hyperparameters of the case-study models (:mod:`churn_dagster.studies.case_study.ml.models`), with defaults, bounds and meaning.

Plain dataclasses without scikit-learn, like :mod:`churn_dagster.training.ml.hyperparameters` (whose conventions they
follow: a field's metadata holds its bounds and description), so that each model asset's ``dg.Config`` is
generated from them when the code location loads. Kept in a module of their own so the case study stays out of
the churn models' hyperparameter file.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UpsamplingConfig:
    """The case study's answer to the 1:4 class imbalance: more copies of the active training users."""

    upsample_factor: int = field(default=4, metadata={
        "ge": 2, "description": "The upsampled variant trains on this many times the active training users "
                                "(the originals plus draws with replacement); validation and test rows never change."})
    seed: int = field(default=42, metadata={"description": "Seed of the draws and of the models' own randomness."})


@dataclass(frozen=True)
class SvmConfig:
    """A linear SVM with probabilities calibrated by Platt scaling over cross-validation folds of the training
    rows. A kernel SVM's training time grows with the square of the rows (or worse): a million users are out
    of its reach, the linear one scales linearly."""

    C: float = field(default=1.0, metadata={"gt": 0, "description": "Inverse regularisation strength."})
    max_iter: int = field(default=2000, metadata={"ge": 1, "description": "liblinear iterations at most."})
    calibration_folds: int = field(default=3, metadata={
        "ge": 2, "description": "Folds of the sigmoid calibration (each fits an SVM on the others)."})


@dataclass(frozen=True)
class NaiveBayesConfig:
    """Gaussian naive Bayes on the scaled features. Its smoothing is far above scikit-learn's 1e-9: a rare
    province's one-hot column has almost no variance within a class, and unsmoothed, the few users from it decide
    their own prediction by an extreme likelihood (on 1,534 users accuracy fell to 0.23; 0.77 at 1e-2)."""

    var_smoothing: float = field(default=1e-2, metadata={
        "ge": 0, "description": "Share of the largest feature variance added to every variance, for stability."})


@dataclass(frozen=True)
class TreeConfig:
    """A single decision tree (CART, Gini)."""

    max_depth: int = field(default=8, metadata={"ge": 1, "description": "Depth at most."})
    min_samples_leaf: int = field(default=50, metadata={"ge": 1, "description": "Training rows per leaf at least."})


@dataclass(frozen=True)
class MlpConfig:
    """A feed-forward network; the default layers are the case study's own (28, 10 and 6 ReLU units)."""

    hidden_layers: list[int] = field(default_factory=lambda: [28, 10, 6], metadata={
        "description": "Units of each hidden ReLU layer, input side first."})
    learning_rate: float = field(default=1e-3, metadata={"gt": 0, "description": "Adam learning rate."})
    batch_size: int = field(default=256, metadata={"ge": 1})
    max_epochs: int = field(default=30, metadata={
        "ge": 1, "description": "Epochs at most; training stops earlier after 5 epochs without a lower loss."})
    alpha: float = field(default=1e-4, metadata={"ge": 0, "description": "L2 penalty."})
