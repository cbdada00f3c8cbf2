"""Stage 2: train the model kind chosen in params on the prepared data.

Writes ``models/model.keras`` (native Keras format), ``models/train.json``
(what evaluate needs: the kind, the MLflow run and model, the final figures;
for the seed kind also ``models/seed_state.npz``, the trained x and y) and
``reports/train_history.csv`` (``step,loss[,val_loss]``, a DVC plot).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from nextclose import atomic, registry, training
from nextclose.params import Params
from nextclose.stages.prepare import PREPARED_DIR, load_normalisation, load_windows

MODELS_DIR = Path("models")
HISTORY_FILE = Path("reports/train_history.csv")


class Progress:
    """A progress bar on a terminal; plain lines every ``log_every`` steps otherwise."""

    def __init__(self, total: int, log_every: int, kind: str):
        self.total = total
        self.log_every = log_every
        self.kind = kind
        self.printed_block = -1
        self.printed_step = -1
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", desc=f"train {kind}", dynamic_ncols=True)

    def line(self, evaluation: training.Evaluation) -> str:
        if self.kind == "seed":  # the tutorial's own print: cost, then the last prediction
            return f"step {evaluation.step}: cost {evaluation.loss:.6g} last prediction {evaluation.last_prediction:.6g}"
        text = f"step {evaluation.step}/{self.total}: loss {evaluation.loss:.4f}"
        return text + (f" val_loss {evaluation.val_loss:.4f}" if evaluation.val_loss is not None else "")

    def __call__(self, evaluation: training.Evaluation) -> None:
        if self.bar is not None:
            self.bar.update(evaluation.step + (1 if self.kind == "seed" else 0) - self.bar.n)
            postfix = {"loss": f"{evaluation.loss:.4g}"}
            if evaluation.val_loss is not None:
                postfix["val_loss"] = f"{evaluation.val_loss:.4g}"
            self.bar.set_postfix(postfix)
            if self.kind == "seed" and evaluation.step % self.log_every == 0:
                self.bar.write(self.line(evaluation))
            return
        block = evaluation.step // self.log_every
        if block > self.printed_block:
            self.printed_block = block
            self.printed_step = evaluation.step
            print(self.line(evaluation), flush=True)

    def close(self, result: training.TrainResult) -> None:
        """Close the bar and make sure the last evaluation was shown."""
        if self.bar is not None:
            self.bar.close()
        last = result.history[-1]
        if self.bar is not None or last.step != self.printed_step:
            print(self.line(last), flush=True)


def history_csv(history: list[training.Evaluation], with_validation: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "loss", "val_loss"] if with_validation else ["step", "loss"])
    for row in history:
        values = [row.step, repr(row.loss)]
        writer.writerow(values + [repr(row.val_loss)] if with_validation else values)
    return out.getvalue()


def run_training(params: Params, on_evaluation: Optional[training.OnEvaluation] = None) -> training.TrainResult:
    """Train ``params.model.kind`` on ``data/prepared``: the one entry point train and tune share."""
    if params.model.kind == "seed":
        with np.load(PREPARED_DIR / "seed.npz") as seed:
            x, y = seed["x"], seed["y"]
        return training.train_seed(x, y, params.model, params.train, params.base.seed, on_evaluation)
    splits = load_windows()
    return training.train_lstm(
        splits["train"], splits["validation"], load_normalisation(), params.model, params.train,
        params.base.seed, on_evaluation,
    )


def lstm_input_example() -> np.ndarray:
    """A few prepared validation windows: the input example of a logged lstm model."""
    return load_windows()["validation"].inputs[:5]


def main(params: Params) -> None:
    import mlflow

    from nextclose import tracking

    with tracking.stage_run("train", run_name=f"train-{params.model.kind}") as run:
        mlflow.log_params(params.section_dict("base", "model", "train"))
        mlflow.log_param("features.window", params.features.window)
        progress = Progress(params.train.steps, params.train.log_every, params.model.kind)

        def on_evaluation(evaluation: training.Evaluation) -> None:
            metrics = {"loss": evaluation.loss}
            if evaluation.val_loss is not None:
                metrics["val_loss"] = evaluation.val_loss
            mlflow.log_metrics(metrics, step=evaluation.step)
            progress(evaluation)

        result = run_training(params, on_evaluation)
        progress.close(result)
        seed_kind = params.model.kind == "seed"
        final = result.history[-1]
        summary = {
            "kind": params.model.kind,
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "steps_run": result.steps_run,
            "stopped_early": result.stopped_early,
            "best_step": result.best_step,
            "final_loss": final.loss,
        }
        if seed_kind:
            summary["final_cost"] = final.loss
            summary["final_last_prediction"] = final.last_prediction
            mlflow.log_metrics({"final_cost": final.loss, "final_last_prediction": final.last_prediction})
            with np.load(PREPARED_DIR / "seed.npz") as seed:
                input_example = seed["x"][None]  # the network reads one year as one sequence
        else:
            summary["best_val_loss"] = result.best_loss
            summary["final_val_loss"] = final.val_loss
            mlflow.log_metrics({
                "best_val_loss": result.best_loss, "best_step": result.best_step,
                "final_loss": final.loss, "final_val_loss": final.val_loss,
                "steps_run": result.steps_run,
            })
            input_example = lstm_input_example()
        logged = tracking.log_keras_model(
            result.model, input_example, registered_model_name=registry.registered_name(params.model.kind),
            exported=seed_kind,  # SeedNetwork is a custom class; its graph loads without nextclose
        )
        summary["model_uri"] = logged.model_uri
        summary["model_id"] = logged.model_id
        summary["registered_model"] = registry.registered_name(params.model.kind)
        summary["registered_version"] = logged.registered_model_version

        # Files last, each in one rename, so a failure above leaves the old outputs whole.
        with atomic.new_directory(MODELS_DIR) as staging:
            result.model.save(staging / "model.keras")
            if seed_kind:
                np.savez(staging / "seed_state.npz", x=result.trained_inputs, y=result.trained_targets)
            atomic.write_json(staging / "train.json", summary)
        atomic.write_text(HISTORY_FILE, history_csv(result.history, not seed_kind))
        mlflow.log_artifact(str(HISTORY_FILE))
    where = f"best val_loss {result.best_loss:.4f} at step {result.best_step}" if not seed_kind else (
        f"final cost {final.loss:.6g}"
    )
    print(f"trained {params.model.kind} for {result.steps_run} steps: {where}; MLflow run {run.info.run_id}")
