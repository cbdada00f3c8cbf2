"""Stage 2: train the model kind chosen in params on the prepared data.

Trains ``train.seeds`` members together (:mod:`nextclose.training`); the model is their mean.
Writes ``models/`` (``model.keras``, ``train.json``: the kind, steps, final figures and each
member's seed and best step; for the lstm ``calibration.json``, its validation residuals; for
the tutorial kind ``tutorial_state.npz``, each member's trained x and y),
``reports/train_history.csv`` (``step,loss[,val_loss]`` and one column pair per member, a DVC
plot) and ``.nextclose/train_run.json`` (the MLflow run and model), all in one commit. The
registered model of the lstm takes bars (:mod:`nextclose.served`); the tutorial's, its tensor.
"""

from __future__ import annotations

import sys
from typing import Any

from nextclose import atomic, layout, metrics, registry, training
from nextclose.errors import UserError
from nextclose.features import PanelWindows
from nextclose.params import Params


class Progress:
    """A progress bar on a terminal; plain lines every ``log_every`` steps otherwise."""

    def __init__(self, total: int, log_every: int, kind: str):
        self.total = total
        self.log_every = log_every
        self.kind = kind
        self.printed_block = -1
        self.printed_step = -1
        self.bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", desc=f"train {kind}", dynamic_ncols=True)

    def line(self, point: training.CurvePoint) -> str:
        if self.kind == "tutorial":  # the tutorial's own print: cost, then the last prediction
            return f"step {point.step}: cost {point.loss:.6g} last prediction {point.last_prediction:.6g}"
        text = f"step {point.step}/{self.total}: loss {point.loss:.4f}"
        return text + (f" val_loss {point.val_loss:.4f}" if point.val_loss is not None else "")

    def __call__(self, point: training.CurvePoint) -> None:
        if self.bar is not None:
            self.bar.update(point.step + (1 if self.kind == "tutorial" else 0) - self.bar.n)
            postfix = {"loss": f"{point.loss:.4g}"}
            if point.val_loss is not None:
                postfix["val_loss"] = f"{point.val_loss:.4g}"
            self.bar.set_postfix(postfix)
            if self.kind == "tutorial" and point.step % self.log_every == 0:
                self.bar.write(self.line(point))
            return
        block = point.step // self.log_every
        if block > self.printed_block:
            self.printed_block = block
            self.printed_step = point.step
            print(self.line(point), flush=True)

    def close(self, result: training.TrainResult) -> None:
        """Close the bar and make sure the last point was shown."""
        if self.bar is not None:
            self.bar.close()
        last = result.history[-1]
        if self.bar is not None or last.step != self.printed_step:
            print(self.line(last), flush=True)


def main(params: Params) -> None:
    from nextclose import tracking

    mlflow = tracking.mlflow_api()

    data = layout.read_training_data()
    tutorial_kind = params.model.kind == "tutorial"
    if tutorial_kind and layout.read_panel_normalisation() is not None:
        raise UserError(f"{layout.PREPARED_DIR}: holds a panel of symbols, but model.kind tutorial reads one "
                        f"series (the tutorial's index); train the lstm (model.kind: lstm) on a panel")
    with tracking.stage_run("train") as run:
        mlflow.log_params(params.section_dict("base", "model", "train"))
        mlflow.log_param("features.window", params.features.window)
        progress = Progress(params.train.steps, params.train.log_every, params.model.kind)

        def on_point(point: training.CurvePoint) -> None:
            figures: dict[str, float] = {"loss": point.loss}
            if point.val_loss is not None:
                figures["val_loss"] = point.val_loss
            if point.served_val_loss is not None and params.train.seeds > 1:
                figures["served_val_loss"] = point.served_val_loss
            if params.train.seeds > 1:  # each member's curve beside the ensemble's, until it stops
                for index, (loss, val_loss) in enumerate(
                    zip(point.member_losses, point.member_val_losses or (None,) * params.train.seeds), 1
                ):
                    if loss is not None:
                        figures[f"member{index}_loss"] = loss
                    if val_loss is not None:
                        figures[f"member{index}_val_loss"] = val_loss
            mlflow.log_metrics(figures, step=point.step)
            progress(point)

        result = training.train_model(data, params.model, params.train, params.base.seed, on_point)
        progress.close(result)
        final = result.history[-1]
        # models/train.json: what the model is, the same bytes whenever the inputs are the same
        summary: dict[str, Any] = {
            "kind": params.model.kind,
            "steps_run": result.steps_run,
            "stopped_early": result.stopped_early,
            "best_step": result.best_step,
            "final_loss": final.loss,
            "members": [
                {"seed": seed, "best_step": step, "best_loss": loss, "stop_step": stop}
                for seed, step, loss, stop in zip(result.member_seeds, result.member_best_steps,
                                                  result.member_best_losses, result.member_stop_steps)
            ],
        }
        spread = metrics.spread(result.member_best_losses)
        mlflow.log_metrics({f"member_best_loss_{name}": value for name, value in spread.items()})
        if tutorial_kind:
            summary["final_cost"] = final.loss
            summary["final_last_prediction"] = final.last_prediction
            mlflow.log_metrics({"final_cost": final.loss, "final_last_prediction": summary["final_last_prediction"]})
            input_example = data.tutorial_x[None]  # the network reads one year as one sequence
        else:
            summary["best_val_loss"] = result.best_loss
            summary["final_val_loss"] = final.val_loss
            mlflow.log_metrics({
                "best_val_loss": result.best_loss, "best_step": result.best_step,
                "final_loss": final.loss, "final_val_loss": summary["final_val_loss"],
                "steps_run": result.steps_run,
            })
        name = registry.registered_name(params.model.kind, panel=layout.read_panel_normalisation() is not None)
        step = final.step if tutorial_kind else result.best_step  # the curve's point the model is
        calibration = None
        if tutorial_kind:
            logged = tracking.log_keras_model(
                result.model, input_example, name=tracking.model_name(params), registered_model_name=name,
                exported=True,  # a custom class; its graph loads without nextclose
                step=step,
            )
        else:  # the served model takes bars: windowing and scaling inside (nextclose.served)
            from nextclose import forecaster, served

            per_symbol = layout.read_panel_normalisation()
            if per_symbol is None:
                calibration = forecaster.calibrate(result.model, data.validation, params.features)
            else:  # bars with a symbol column in, one forecast per symbol out
                validation = layout.read_windows()["validation"]  # in prices: data.validation is scaled
                assert isinstance(validation, PanelWindows)
                calibration = forecaster.calibrate_panel(result.model, validation, per_symbol, params.features)
            seen_bars = layout.read_prepared_bars().query("split != 'test'")  # the example: real, not test
            logged = served.log_bars_model(
                result.model, calibration, served.bars_example(seen_bars, calibration),
                name=tracking.model_name(params), registered_model_name=name,
                requirements=tracking.model_requirements(tracking.FORECASTER_DISTRIBUTIONS), step=step,
            )
        final_figures = ({"final_cost": final.loss} if tutorial_kind else
                         {"best_val_loss": result.best_loss, "best_step": result.best_step,
                          "steps_run": result.steps_run})
        mlflow.log_metrics(final_figures, model_id=logged.model_id)  # the Models tab shows these
        # .nextclose/train_run.json: which run and model made models/ (new on every run)
        ids = {
            "run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "model_uri": logged.model_uri, "model_id": logged.model_id,
            "registered_model": name, "registered_version": logged.registered_model_version,
        }
        tutorial_state = None
        if result.trained_inputs is not None and result.trained_targets is not None:
            tutorial_state = (result.trained_inputs, result.trained_targets)
        # Files last, in one commit, so a failure or a kill above leaves the old outputs whole.
        with atomic.Commit() as commit:
            layout.write_models(commit, result.model, summary, tutorial_state,
                                calibration=None if calibration is None else calibration.document())
            layout.write_history(commit, result.history, with_validation=not tutorial_kind)
            layout.write_resolved_params(commit, params.model, params.train)
            layout.write_train_run(commit, ids)
        mlflow.log_artifact(str(layout.HISTORY_FILE))
        # the params only: evaluate adds the validation loss after the test figures, so that the
        # test figure is the execution's first metric, the one MLflow's compare view plots
        run.record(tracking.execution_params(params), {})
    members = len(result.member_seeds)
    if tutorial_kind:
        where = f"final cost {final.loss:.6g}"
    elif members == 1:
        where = f"best val_loss {result.best_loss:.4f} at step {result.best_step}"
    else:
        where = (f"ensemble val_loss {result.best_loss:.4f}; members' best {spread['mean']:.4f} "
                 f"± {spread['std']:.4f} (min {spread['min']:.4f}, max {spread['max']:.4f})")
    print(f"trained {members} {params.model.kind} member{'s' if members > 1 else ''} (seeds "
          f"{result.member_seeds[0]}..{result.member_seeds[-1]}) for {result.steps_run} steps: {where}; "
          f"MLflow run {run.info.run_id}")
