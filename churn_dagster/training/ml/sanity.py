"""What every model's blocking sanity check asks of it: finite weights and finite probabilities in [0, 1]."""

import numpy as np
import torch


def finite_probabilities(proba) -> bool:
    """Every probability finite and within [0, 1]."""
    proba = np.asarray(proba, dtype=np.float64)
    return bool(np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all())


def finite_weights(model) -> bool:
    """Every weight finite: a torch network's parameters, an MLP's layers or a linear model's coefficients
    (through a Pipeline's ``model`` step); tree ensembles have neither, and their outputs are checked instead."""
    if isinstance(model, torch.nn.Module):
        return all(torch.isfinite(p).all().item() for p in model.parameters())
    inner = getattr(model, "named_steps", {}).get("model", model)
    arrays = getattr(inner, "coefs_", None) or [getattr(inner, "coef_", np.zeros(1))]
    return all(np.isfinite(a).all() for a in arrays)
