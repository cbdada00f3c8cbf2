"""The logged model: an MLflow pyfunc that takes daily bars and answers the next close.

``mlflow.pyfunc.load_model("models:/nextclose-lstm@champion").predict(bars)`` and
``mlflow models serve`` take a table of bars (``date, open, high, low, close[, volume]``,
oldest first, at least ``features.window`` rows) and answer one row per forecast
(:data:`nextclose.forecaster.OUTPUT_COLUMNS`). A panel's model takes bars with a ``symbol``
column (close-only when it was trained on closes), at least a window of each symbol, and
answers one row per symbol (:data:`nextclose.forecaster.PANEL_OUTPUT_COLUMNS`). Inference
params: ``interval``, the coverage (default :data:`SERVED_INTERVAL`), and ``every_day``, a
forecast after every bar that ends a whole window rather than after the last one only (batch
scoring of a whole file).

The model folder carries the network (``model.keras``), its calibration and nextclose's own
code (MLflow's ``code_paths``), so it loads wherever its pinned packages are installed. A
process that loads it runs the code it carries, unless nextclose is already imported there:
``nextclose predict`` runs the installed code with the version's network and calibration.

The signature types the prices and the volume as floats and the date as an ISO string: a
request over HTTP (JSON or CSV) is cast to them, a DataFrame passed in Python must match
(``bars.astype({"volume": float})`` for integer volumes).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from mlflow.pyfunc import PythonModel

from nextclose import atomic, forecaster, layout

# The coverage of the interval when a request names none: params.yaml's evaluate.interval as
# shipped. `nextclose predict` always sends evaluate.interval.
SERVED_INTERVAL = 0.9
INFERENCE_PARAMS = {"interval": SERVED_INTERVAL, "every_day": False}
# What the model's errors call the bars it was sent (nextclose predict puts the source's name there).
SENT_BARS = "the bars sent"


class BarsForecaster(PythonModel):
    """Bars in, :func:`nextclose.forecaster.forecast_table` out."""

    # The signature is given when logging (named columns, inference params): MLflow's checks of
    # type hints on predict would only ask for hints that say less.
    _skip_type_hint_validation = True

    def load_context(self, context):
        path = context.artifacts["calibration"]
        self.network, self.calibration = load_forecaster(
            context.artifacts["network"], json.loads(Path(path).read_text()), path)

    def predict(self, context, model_input, params: Optional[dict[str, Any]] = None):  # noqa: ARG002
        settings = INFERENCE_PARAMS | (params or {})
        table = forecaster.read_bars(pd.DataFrame(model_input), self.calibration, SENT_BARS)
        return forecaster.forecast_table(self.network, table, self.calibration, float(settings["interval"]),
                                         every_day=bool(settings["every_day"]))


def load_forecaster(network_path: str | Path, calibration: dict[str, Any],
                    calibration_source: str) -> tuple[Any, forecaster.Calibration]:
    """The network (``model.keras``) and its calibration (``calibration.json``'s document)."""
    import keras

    from nextclose import model as _registers_the_ensemble  # noqa: F401  (load_model needs it)

    checked = forecaster.Calibration.from_document(calibration, calibration_source)
    return keras.saving.load_model(network_path, compile=False), checked


def takes_bars(signature: Any) -> bool:
    """Whether a logged model's signature is a bars forecaster's (named columns with ``close``):
    lstm versions logged before this model took tensors, as the tutorial kind's still do."""
    inputs = None if signature is None else signature.inputs
    return inputs is not None and not inputs.is_tensor_spec() and "close" in inputs.input_names()


def bars_example(bars: pd.DataFrame, calibration: forecaster.Calibration) -> pd.DataFrame:
    """Real bars as a caller sends them: the last window of ``bars`` with the columns the model
    reads, dates as ISO strings, values as floats (JSON's numbers)."""
    chosen = bars.loc[:, list(calibration.columns)]
    if calibration.symbols is None:
        example = chosen.tail(calibration.window).reset_index(drop=True)
    else:  # the last window of every symbol
        example = chosen.groupby("symbol", sort=True).tail(calibration.window).reset_index(drop=True)
    example["date"] = pd.to_datetime(example["date"]).dt.strftime("%Y-%m-%d")
    numbers = [column for column in calibration.columns[1:] if column != "symbol"]
    return example.astype({column: "float64" for column in numbers})


def package_copy(directory: Path) -> Path:
    """A copy of the nextclose package, without bytecode, for the model's ``code_paths``."""
    source = Path(forecaster.__file__).parent
    target = directory / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def log_bars_model(network: Any, calibration: forecaster.Calibration, example_bars: pd.DataFrame, name: str,
                   registered_model_name: Optional[str], requirements: list[str], step: int) -> Any:
    """Log (and register) the forecaster of ``network``; the example is real bars, its
    answer the signature's output, with the inference params named in the signature."""
    with tempfile.TemporaryDirectory(prefix="nextclose-model-") as scratch:
        folder = Path(scratch)
        layout.save_keras(network, folder / layout.MODEL_FILE)
        atomic.write_new(folder / layout.CALIBRATION_FILE, json.dumps(calibration.document()))
        table = forecaster.read_bars(example_bars, calibration, "the input example")
        # (the signature needs an answer; a short validation split gives only a narrower interval)
        coverage = min(SERVED_INTERVAL, forecaster.largest_coverage(calibration))
        answer = forecaster.forecast_table(network, table, calibration, coverage)
        # (MLflow warns that a Python object is pickled: this one's class is in the code it carries)
        pyfunc_logger = logging.getLogger("mlflow.pyfunc")
        level = pyfunc_logger.level
        pyfunc_logger.setLevel(logging.ERROR)
        try:
            return _log(folder, example_bars, answer, name, registered_model_name, requirements, step)
        finally:
            pyfunc_logger.setLevel(level)


def _log(folder: Path, example_bars: pd.DataFrame, answer: pd.DataFrame, name: str,
         registered_model_name: Optional[str], requirements: list[str], step: int) -> Any:
    from mlflow.models import infer_signature

    from nextclose import tracking

    return tracking.mlflow_api().pyfunc.log_model(
        name=name,
        python_model=BarsForecaster(),
        artifacts={"network": str(folder / layout.MODEL_FILE), "calibration": str(folder / layout.CALIBRATION_FILE)},
        code_paths=[str(package_copy(folder / "code"))],
        signature=infer_signature(example_bars, answer, params=INFERENCE_PARAMS),
        input_example=example_bars,
        pip_requirements=requirements,
        registered_model_name=registered_model_name,
        step=step,
    )
