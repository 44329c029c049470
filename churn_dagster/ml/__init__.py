"""Model code for churn and engagement prediction: plain PyTorch, scikit-learn and XGBoost, no Dagster.

The assets in ``churn_dagster.defs`` call into this package; nothing here knows about partitions, resources
or MLflow, so every piece can be run and tested on its own.

- :mod:`.data`: a Dataset over the memory-mapped sequence tensors and a collate that pads per batch.
- :mod:`.models`: the LSTM and the hybrid (attention + static MLP) networks.
- :mod:`.digmn`: DIGMN (WSDM 2023): behaviour and intent LSTMs, a meta network, FC-D layers; its static ablation.
- :mod:`.train`: the training loop, early stopping, prediction.
- :mod:`.metrics`: binary and five-level evaluation as JSON-ready dicts.
- :mod:`.classical`: logistic regression and XGBoost on the KPI aggregates.
- :mod:`.intents`: session intents (LDA topics over event types, K by held-out perplexity) and user profiles.
- :mod:`.plots`, :mod:`.explain`: PNG figures, SHAP, coefficients, attention.
"""
