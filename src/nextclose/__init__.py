"""nextclose: forecast the next trading day's close with an LSTM, tracked with DVC, MLflow and Optuna."""

__version__ = "0.1.0"
