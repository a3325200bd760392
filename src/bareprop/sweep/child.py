"""One trial of a sweep, in a process of its own: ``python -m bareprop.sweep.child``.

The process that started it (the sweep, or a Ray Tune worker) talks to it in JSON
lines. On stdin, first the trial: ``{"settings": {...}, "folder": ..., "number": N}``
(the train settings as ``bareprop train`` would take them); after each epoch, the
verdict: ``go`` or ``prune``. On the protocol stream (the original stdout; everything
the run prints goes to stderr, the trial's log):

    {"event": "resumed", "epoch": 2, "val_accuracy": [0.84, 0.86]}   (from a checkpoint)
    {"event": "epoch", "epoch": 3, "val_accuracy": 0.87, "val_loss": 0.35, "seconds": 1.2}
    {"event": "end", "state": "complete", "value": 0.88, "epochs_run": 10, "reason": null}

state: complete (every epoch run, or stopped early by --early-stop), pruned (told so),
stopped (its parent went away: stdin closed; the checkpoint of the last epoch stays
for --resume), failed (diverged or crashed; ``reason`` is the one line). The trial's
run folder is a whole run folder whatever the state: model.npz, metrics.json (with
the validation accuracy, and no test figure: a sweep keeps the test set for the best
trial alone), checkpoint.npz, loss.png.

The test set is never evaluated here: the objective is ``value``, the validation
accuracy of the final weights.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from ..errors import BarepropError, first_line
from ..train import Callback
from .trials import end_message


class Verdicts(Callback):
    """After each epoch: the validation figures out, the verdict in; a ``prune`` (or a
    closed stdin) stops training after this epoch (its checkpoint is written already:
    this callback runs after the Checkpointer)."""

    needs_grads = False

    def __init__(self, out, inp):
        self.out, self.inp = out, inp
        self.pruned = self.stopped = False

    def on_epoch_end(self, state, logs):
        try:
            send(self.out, {"event": "epoch", "epoch": logs["epoch"],
                            "val_accuracy": logs.get("val_accuracy"),
                            "val_loss": logs.get("val_loss"), "seconds": logs["seconds"]})
            verdict = self.inp.readline().strip()
        except (BrokenPipeError, OSError, ValueError):    # its reader is gone: as EOF
            verdict = ""
        if verdict == "go":
            return
        if verdict == "prune":
            self.pruned = True
        else:                                   # EOF: whoever started us is gone
            self.stopped = True
        state.stop_training = True


def pin_data(settings: dict) -> None:
    """A sweep's data folder must still be there: without it bareprop would look in its
    other places (BAREPROP_DATA_DIR, the cache) and trials would train on other data."""
    from ..errors import DataError

    folder = settings.get("data_dir")
    if folder and not Path(folder).is_dir():
        raise DataError(f"the sweep's data folder {folder} is gone; put it back and "
                        "continue with bareprop sweep --resume")


def send(out, message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def run_trial(spec: dict, out, inp) -> dict:
    """Train the trial ``spec`` describes (resuming its folder's checkpoint if it has
    one), write its run folder; the end message. ``spec["finish"]`` (a state): train no
    further, write the folder from its checkpoint as a trial ended in that state (a
    Ray Tune trial whose worker was stopped with its process)."""
    from .. import __version__, modelfile
    from ..experiment import build_run, check_flags, machine, make_config, restore
    from ..experiment.resume import check_against_run
    from ..runs.layout import CHECKPOINT, LOSS_PLOT, MODEL
    from ..runs.lock import claim_run_folder
    from ..runs.results import train_metrics, write_train_results
    from ..train import evaluate, fit
    from ..train.checkpoint import load_checkpoint

    t0 = time.perf_counter()
    folder = Path(spec["folder"])
    settings = dict(spec["settings"], out=str(folder))
    pin_data(settings)
    cfg = make_config(settings)
    check_flags(settings, cfg)
    resume = (folder / CHECKPOINT).is_file()
    folder, lock = claim_run_folder(str(folder), resume=resume, overwrite=not resume)
    with lock:
        r = build_run(cfg, folder, quiet=True, tuning=True)
        history, start, ckpt = None, 0, {}
        if resume:
            ckpt = load_checkpoint(folder / CHECKPOINT)
            check_against_run(ckpt, r, folder / CHECKPOINT)
            history, start = restore(r, ckpt)
            # the epochs it resumes after, as its checkpoint has them (a kill between
            # the checkpoint and the epoch's report leaves one its parent never heard)
            send(out, {"event": "resumed", "epoch": start,
                       "val_accuracy": [e.get("val_accuracy") for e in history.epochs]})
        verdicts = Verdicts(out, inp)
        finish = spec.get("finish")
        if finish and not start:
            raise BarepropError("it stopped before its first epoch ended")
        history = fit(r.model, r.loss_fn, r.optimizer, r.train, start if finish else cfg.epochs,
                      validation_data=r.val, callbacks=[*r.callbacks, verdicts],
                      update_order=cfg.update_order, history=history, start_epoch=start,
                      seed=cfg.seed, verbose=False)
        result = evaluate(r.model, r.loss_fn, r.val)
        if finish and (start >= cfg.epochs or r.stateful.get("early_stopping") and
                       ckpt.get("stopped")):
            finish = "complete"          # it had ended; only its folder was not written
        state = finish or ("pruned" if verdicts.pruned else
                           "stopped" if verdicts.stopped else "complete")
        modelfile.save(r.model, folder / MODEL, input_shape=r.input_shape, classes=r.classes,
                       scaling=r.scaler.to_dict(),
                       extra={"dataset": cfg.dataset, "config": cfg.to_dict()})
        metrics = train_metrics(
            test_accuracy=None, test_loss=None, per_class_accuracy=[], history=history,
            total_seconds=time.perf_counter() - t0, config=cfg.to_dict(), machine=machine(),
            processes=1, version=__version__)
        metrics.update(val_accuracy=result.accuracy, val_loss=result.loss,
                       sweep_trial={"number": spec.get("number"), "state": state})
        write_train_results(folder, metrics, r.stateful["inspector"].records)
        from .. import plots

        plots.save_training_plot(history, folder / LOSS_PLOT,
                                 title=f"{cfg.dataset}, trial {spec.get('number')}")
    return end_message(state, result.accuracy, len(history.epochs))


def main() -> int:
    # Ctrl-C reaches us as the sweep's SIGINT even when ours was inherited ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # the protocol keeps the real stdout; anything printed goes to stderr (the log)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp, spec = sys.stdin, None
    try:
        spec = json.loads(inp.readline())
        message = run_trial(spec, out, inp)
    except KeyboardInterrupt:
        message = end_message("stopped", reason="interrupted")
    except BarepropError as exc:              # diverged, refused: the one line
        message = end_message("failed", reason=first_line(exc))
    except Exception as exc:                  # a bug: its traceback goes to the log
        import traceback

        traceback.print_exc()
        message = end_message("failed", reason=f"{type(exc).__name__}: {first_line(exc)}")
    folder = spec.get("folder") if isinstance(spec, dict) else None
    if folder:
        _keep(folder, dict(message, number=spec.get("number")))
    try:
        send(out, message)
    except (BrokenPipeError, ValueError):      # nobody listens any more
        pass
    return 0


def _keep(folder, message: dict) -> None:
    """trial.json: the outcome, for whoever reads the folder after (a sweep resumed
    after its process was killed, the Ray engine's driver)."""
    from ..runs.layout import TRIAL
    from ..runs.writer import write_whole

    try:
        write_whole(folder, TRIAL, json.dumps(message).encode())
    except (OSError, BarepropError):
        pass


if __name__ == "__main__":
    sys.exit(main())
