"""``bareprop sweep``: hyperparameter search on Optuna (this machine) or Ray Tune (a
cluster), every trial a bareprop run folder DIR/trials/NNNN, judged on a validation
split; the test set is evaluated once, for the best trial, at the end (sweep/)."""
from __future__ import annotations

import argparse
import signal
import sys
import time
import warnings
from pathlib import Path

from ..errors import ConfigError
from .args import add_config_arguments, explicit_settings, positive_int

RESUME_KEEPS = ("data_dir", "verify")


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="search hyperparameters (Optuna or Ray Tune)",
                       description="Train --trials runs drawn from the --space by Optuna's "
                                   "TPE sampler, prune the poor ones by their per-epoch "
                                   "validation accuracy, and name the best. Every other "
                                   "train flag means what it means for train and is "
                                   "shared by all trials.",
                       argument_default=argparse.SUPPRESS)
    p.add_argument("--space", action="append", metavar="NAME=SPEC",
                   help="a train flag and its distribution: log(LOW,HIGH), uniform(LOW,HIGH), "
                        "int(LOW,HIGH[,log]), choice(A,B,...); repeat for each flag")
    p.add_argument("--trials", type=positive_int, help="trials to run (default: 20)")
    p.add_argument("--jobs", type=positive_int,
                   help="trials at once, as processes of cores/jobs threads each (default: 1)")
    p.add_argument("--prune", help="none, median (default) or asha")
    p.add_argument("--engine", help="optuna (default) or ray")
    p.add_argument("--ray-address", dest="ray_address", metavar="ADDR",
                   help="join a running Ray cluster (default: start a local one)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out: unfinished trials run on from their "
                        "checkpoints, then new ones are drawn up to --trials")
    add_config_arguments(p)
    p.set_defaults(run=run)


def _interrupt_on_term():
    """SIGTERM ends a sweep as Ctrl-C does: trials keep their checkpoints."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:                      # not the main thread (tests calling run())
        pass


def _plan(args, explicit):
    from ..sweep.plan import plan

    if "out" not in explicit:
        raise ConfigError("a sweep needs --out DIR (its trials, study and results go there)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sw = plan(explicit["out"], explicit, getattr(args, "space", None) or [],
                  getattr(args, "trials", 20), getattr(args, "jobs", 1),
                  getattr(args, "prune", "median"), getattr(args, "engine", "optuna"),
                  explicit.get("seed", 0), getattr(args, "ray_address", None))
    for w in caught:
        print(f"bareprop: warning: {w.message}", file=sys.stderr)
    return sw


def _resumed(args, explicit):
    from ..runs.jsonfiles import read_run_json
    from ..runs.layout import SWEEP
    from ..sweep.plan import from_record, require

    if "out" not in explicit:
        raise ConfigError("--resume continues the sweep in --out DIR; give --out")
    folder = Path(explicit["out"])
    if not (folder / SWEEP).is_file():
        raise ConfigError(f"{folder} holds no sweep ({SWEEP}) to resume; start one with "
                          f"bareprop sweep --out {folder} ...")
    typed = sorted(set(explicit) - {"out", *RESUME_KEEPS})
    typed += [f for f in ("space", "prune", "engine", "ray_address") if hasattr(args, f)]
    if typed:
        raise ConfigError(f"--resume continues a sweep with its saved settings; drop "
                          f"{', '.join('--' + f.replace('_', '-') for f in typed)}")
    from ..runs.layout import JOURNAL

    record = read_run_json(folder / SWEEP)
    try:
        sw = from_record(folder, record)
    except ConfigError as exc:
        raise ConfigError(f"{folder / SWEEP} is damaged: {exc}; start a new sweep in "
                          "another --out folder") from None
    if sw.engine == "optuna" and record["trials"] and not (folder / JOURNAL).is_file():
        raise ConfigError(f"{folder} holds trials but no {JOURNAL}: the study is gone, and "
                          "resuming would draw and run trials over the ones there; start a "
                          "new sweep in another --out folder")
    sw.settings.update({k: explicit[k] for k in RESUME_KEEPS if k in explicit})
    if hasattr(args, "trials"):
        if args.trials < len(record["trials"]):
            raise ConfigError(f"--trials {args.trials} is fewer than the "
                              f"{len(record['trials'])} trials {folder} holds already")
        sw.trials = record["trials_wanted"] = args.trials
    if hasattr(args, "jobs"):
        from ..sweep.trials import cores

        if args.jobs > cores() and sw.engine == "optuna":
            print(f"bareprop: warning: --jobs {args.jobs} is more than this machine's "
                  f"{cores()} cores; running {cores()} trials at once", file=sys.stderr)
        sw.jobs = record["jobs"] = min(args.jobs, cores()) if sw.engine == "optuna" \
            else args.jobs
        sw.threads = record["threads"] = max(1, cores() // min(sw.jobs, cores()))
    require(sw.engine)
    return sw, record


def _claim(sw, resume: bool):
    """The sweep folder's lock; refused with one line if it holds something else."""
    from ..runs.layout import SWEEP_FILES, TRAIN_FILES
    from ..runs.lock import claim_run_folder

    folder = sw.folder
    if folder.is_dir() and not resume:
        held = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if any(n in SWEEP_FILES for n in held):
            raise ConfigError(f"{folder} already holds a sweep; continue it with --resume, "
                              "or choose a new --out folder")
        if held:
            raise ConfigError(f"{folder} already holds other files ({', '.join(held[:3])}"
                              f"{', ...' if len(held) > 3 else ''}); choose a new or empty "
                              "--out folder for the sweep")
    return claim_run_folder(str(folder), resume=resume, protect=(*TRAIN_FILES, *SWEEP_FILES))


def _say(row: dict) -> None:
    from ..sweep.record import fmt

    params = " ".join(f"{k}={fmt(v)}" for k, v in row["params"].items())
    value = f"val {row['value']:.4f}" if row.get("value") is not None else "val -"
    why = f": {row['reason']}" if row.get("reason") else ""
    print(f"trial {row['number']:04d}  {params}  {value}  {row['state']}{why} "
          f"({len(row['val_accuracy'])} epochs, {row['seconds']:.1f} s)", flush=True)


def run(args: argparse.Namespace) -> int:
    from ..runs.layout import SWEEP, SWEEP_PLOT
    from ..sweep import record as rec
    from ..sweep.finish import save_figure, test_best
    from ..sweep.plan import new_record

    explicit = explicit_settings(args)
    resume = getattr(args, "resume", False)
    sw, record = _resumed(args, explicit) if resume else (_plan(args, explicit), None)
    if record is None:
        record = new_record(sw)
    if sw.engine == "ray":               # a cluster that is not there: before the folder
        from ..sweep.ray_engine import start

        start(sw)
    out, lock = _claim(sw, resume)
    _interrupt_on_term()
    t0 = time.perf_counter() - float(record.get("seconds") or 0.0)

    def save():
        record["seconds"] = time.perf_counter() - t0
        rec.write(out, record)

    with lock:
        record["state"] = "running"
        save()
        try:
            if sw.engine == "ray":
                from ..sweep.ray_engine import run_ray

                run_ray(sw, record, save)     # its trials are said by a Tune callback
            else:
                from ..sweep.optuna_engine import Loop

                Loop(sw, record, _say, save, clock=lambda: time.perf_counter() - t0).run()
        except KeyboardInterrupt:
            record["state"] = "interrupted"
            save()
            done = sum(t["state"] != "running" for t in record["trials"])
            print(f"interrupted: {out} holds {done} ended trials; continue with: "
                  f"bareprop sweep --resume --out {out}", file=sys.stderr)
            raise
        best = test_best(sw, record, explicit.get("data_dir"))
        record["state"] = "finished"
        save()
        drawn = save_figure(sw, record)
    print(rec.table(record))
    pruned = sum(t["state"] == "pruned" for t in record["trials"])
    failed = sum(t["state"] == "failed" for t in record["trials"])
    print(f"{len(record['trials'])} trials ({pruned} pruned, {failed} failed), "
          f"{record['trial_epochs']} trial-epochs, {record['seconds']:.0f} s")
    if best is None:
        print("no trial completed: no best, and the test set was not used")
        return 1 if failed == len(record["trials"]) else 0
    print(f"best: trial {best['number']:04d}, validation accuracy {best['value']:.4f}")
    print(f"test accuracy of the best trial (the test set's one use): "
          f"{best['test_accuracy']:.4f}")
    print(f"reproduce it: {best['command']}")
    print(f"wrote {out / SWEEP}" + (f", {SWEEP_PLOT}" if drawn else ""))
    return 0

