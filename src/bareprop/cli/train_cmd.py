"""``bareprop train``: load data, build the model of a preset/flags, fit, write the run folder.

Run folder (``--out``, default ``runs/<timestamp>-<random>``): model.npz, metrics.json,
loss.png, and checkpoint.npz (rewritten atomically after every epoch; ``--resume DIR``
continues it). A folder already holding a run is refused unless ``--resume`` or
``--overwrite`` (which also deletes the old run's TensorBoard event files); the run holds
the folder's lock file until it ends. ``--quiet`` prints only the final result line.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from .. import __version__, modelfile
from ..errors import ConfigError
from ..experiment import build_run, check_flags, machine, make_config, restore
from ..experiment.resume import check_against_run, check_world_size, config_from_checkpoint
from ..runs.layout import CHECKPOINT, EVENTS, LOSS_PLOT, METRICS_CSV, MODEL, TENSORBOARD
from ..runs.lock import claim_run_folder
from ..runs.results import train_metrics, write_train_results, wrote_line
from ..train import History, evaluate, fit
from ..train.checkpoint import load_checkpoint
from ..train.loggers import remove_event_files
from .args import add_config_arguments, count, explicit_settings


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model and write model, metrics and plots",
                       description="Train an MLP (--hidden ...) or any Sequential (--arch "
                                   "...). Explicit flags override the --preset.",
                       argument_default=argparse.SUPPRESS)
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder that already holds a run, replacing it")
    p.add_argument("--events", action="store_true",
                   help="append live batch/epoch events as JSON lines to events.jsonl in "
                        "the run folder (what bareprop serve shows while the run trains)")
    add_config_arguments(p)
    p.set_defaults(run=run)


def _config_and_checkpoint(args, explicit: dict):
    """(config, run folder, its lock, checkpoint or None): a fresh run, or the run
    --resume names, its checkpoint checked field by field before anything is used."""
    overwrite = getattr(args, "overwrite", False)
    if not getattr(args, "resume", None):
        cfg = make_config(explicit)
        check_flags(explicit, cfg)
        out, lock = claim_run_folder(cfg.out, overwrite=overwrite)
        if overwrite:        # the old run's event files would show beside the new one's
            try:
                remove_event_files(out)
            except BaseException:
                lock.release()
                raise
        return cfg, out, lock, None
    if overwrite:
        raise ConfigError("--resume continues the run in its folder; drop --overwrite")
    extra_flags = sorted(set(explicit) - {"data_dir", "verify"})
    if extra_flags:
        raise ConfigError(f"--resume continues a run with its saved settings; drop "
                          f"{', '.join('--' + f.replace('_', '-') for f in extra_flags)}")
    out = Path(args.resume)
    if not (out / CHECKPOINT).is_file():
        raise ConfigError(f"{out} has no {CHECKPOINT} to resume from; start a run there "
                          f"with: bareprop train --out {out}")
    out, lock = claim_run_folder(args.resume, resume=True)
    try:
        ckpt = load_checkpoint(out / CHECKPOINT)
        cfg = config_from_checkpoint(ckpt, out / CHECKPOINT, dict(explicit, out=str(out)))
    except BaseException:
        lock.release()
        raise
    return cfg, out, lock, ckpt


def run(args: argparse.Namespace) -> int:
    from ..distributed import from_environment

    comm = from_environment()            # None outside mpirun: MPI is never imported
    if comm is not None:
        return _run_parallel(args, comm)
    cfg, out, lock, ckpt = _config_and_checkpoint(args, explicit_settings(args))
    with lock:   # released however the run ends: finished, refused, diverged, interrupted
        if not getattr(args, "events", False):
            return _train(cfg, out, ckpt, getattr(args, "quiet", False))
        from ..train.events import EventLog

        events = EventLog(out / EVENTS)
        try:
            return _train(cfg, out, ckpt, getattr(args, "quiet", False), events=events)
        except KeyboardInterrupt:
            events.state("stopped")          # the checkpoint of the last epoch stays
            raise
        except Exception as exc:
            events.state("failed", error=str(exc) or type(exc).__name__)
            raise
        finally:
            events.close()


def _run_parallel(args, comm) -> int:
    """``mpirun -n K bareprop train``: rank 0 alone claims the run folder and reads the
    checkpoint, and hands the config and state to the others; a refusal on any rank is
    one line from rank 0 and every rank exits (distributed.Comm.agree)."""
    def refuse_events():
        if getattr(args, "events", False):
            raise ConfigError("--events is not supported under mpirun (the event log is "
                              "for bareprop serve's jobs); leave it out")

    comm.agree(refuse_events)            # agreed: one line from rank 0, no MPI_Abort
    claimed = comm.agree(lambda: _config_and_checkpoint(args, explicit_settings(args))
                         if comm.root else None)
    cfg, out, lock, ckpt = claimed if comm.root else (None, None, contextlib.nullcontext(), None)
    cfg, out, ckpt = comm.bcast((cfg, str(out), ckpt) if comm.root else None)
    with lock:
        return _train(cfg, Path(out), ckpt, getattr(args, "quiet", False), comm)


def _prepare(cfg, out: Path, ckpt, quiet: bool, comm):
    """(Run, History, first epoch): the run built and, for --resume, its checkpoint
    checked and restored. Data-parallel: rank 0 builds first (it may download the data
    the others then read), and every refusal is agreed on by all ranks."""
    def build():
        r = build_run(cfg, out, quiet, comm)
        if comm is not None:
            from ..distributed.shard import check_world

            check_world(cfg, comm.size, r.train.n, r.model)
        history, start_epoch = History(), 0
        if ckpt is not None:
            check_world_size(ckpt, 1 if comm is None else comm.size, out)
            check_against_run(ckpt, r, out / CHECKPOINT)
            history, start_epoch = restore(r, ckpt)
        return r, history, start_epoch

    if comm is None:
        return build()
    first = comm.agree(lambda: build() if comm.root else None)
    rest = comm.agree(lambda: None if comm.root else build())
    return first if comm.root else rest


def _announce(cfg, model, comm) -> None:
    """What the run is about to do (not with --quiet): the model's summary table, the
    settings in one line."""
    model.summary()
    schedule = f" ({cfg.schedule})" if cfg.schedule != "none" else ""
    print(f"preset {cfg.preset}: {cfg.dataset}, {count(cfg.epochs, 'epoch')}, "
          f"batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}{schedule}, "
          f"scale {cfg.scale}, seed {cfg.seed}" +
          (f", {comm.size} processes (mpirun)" if comm is not None else ""), flush=True)


def _train(cfg, out: Path, ckpt, quiet: bool, comm=None, events=None) -> int:
    """Build, fit, evaluate, write the run folder. ``quiet``: no summary, progress or
    "wrote" line: only the final "test accuracy" line (and errors, warnings, and the
    epoch a resumed run continues after)."""
    t_start = time.perf_counter()
    r, history, start_epoch = _prepare(cfg, out, ckpt, quiet, comm)
    if events is not None:
        r.callbacks.append(events)       # after the Checkpointer: an epoch event means saved
    if ckpt is not None:                 # said even with --quiet: which epoch comes next
        print(f"resuming {out} after epoch {start_epoch} of {cfg.epochs}", file=sys.stderr)
    if not quiet:
        _announce(cfg, r.model, comm)
    history = fit(r.model, r.loss_fn, r.optimizer, r.train, cfg.epochs, validation_data=r.val,
                  test=r.test,
                  callbacks=r.callbacks, update_order=cfg.update_order, history=history,
                  start_epoch=start_epoch, seed=cfg.seed, comm=comm)
    # evaluated again rather than read from the last epoch: early stopping may have
    # restored earlier weights, and the per-class figures need the predictions
    result = evaluate(r.model, r.loss_fn, r.test, comm=comm)
    if comm is not None and not comm.root:
        return 0                         # rank 0 writes the run folder
    modelfile.save(r.model, out / MODEL, input_shape=r.input_shape, classes=r.classes,
            scaling=r.scaler.to_dict(), extra={"dataset": cfg.dataset, "config": cfg.to_dict()})
    metrics = train_metrics(
        test_accuracy=result.accuracy, test_loss=result.loss,
        per_class_accuracy=result.per_class_accuracy(r.test.y, len(r.classes)).tolist(),
        history=history, total_seconds=time.perf_counter() - t_start, config=cfg.to_dict(),
        machine=machine(), processes=1 if comm is None else comm.size, version=__version__)
    written = write_train_results(out, metrics, r.stateful["inspector"].records)
    from .. import plots

    plotted = plots.save_training_plot(history, out / LOSS_PLOT,
                                       title=f"{cfg.dataset} ({cfg.preset})")
    logs = {"csv": METRICS_CSV, "tensorboard": TENSORBOARD + "/"}
    if not quiet:
        print(wrote_line(out, [MODEL, *written, CHECKPOINT, *([LOSS_PLOT] if plotted else []),
                               *(logs[k] for k in dict.fromkeys(cfg.log) if k in logs)]),
              file=sys.stderr)
    if events is not None:
        events.state("finished", test_accuracy=result.accuracy)
    print(f"test accuracy: {result.accuracy:.4f}")
    return 0
