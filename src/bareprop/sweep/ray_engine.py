"""The Ray engine: the same trials through Ray Tune, on a local Ray cluster or one that
``--ray-address`` joins.

Ray Tune draws with Optuna's TPE sampler (``OptunaSearch``, seeded by --seed), runs at
most --jobs trials at once (``ConcurrencyLimiter``), each a Ray task of ``threads`` CPUs
that starts the trial's process (trials.py, as the Optuna engine does) and reports each
epoch's validation accuracy to Tune; pruning is Tune's scheduler (median:
``MedianStoppingRule``, asha: ``ASHAScheduler``), both counting epochs. A trial Tune
stops loses its worker; its process reads the end of its input at the next epoch,
keeps that epoch's checkpoint and writes its folder: it is recorded as pruned.

Where the folders go: each trial writes its run folder DIR/trials/NNNN from the node
that runs it, so across machines DIR must be a path every node sees (a shared
filesystem mounted at the same path: Ray Tune's own rule for ``storage_path`` since
Ray 2.7). Tune's state is DIR/ray/ (``--resume`` restores it with ``Tuner.restore``).
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..errors import ConfigError
from ..runs.layout import TRIAL
from .record import new_trial, trial_folder
from .trials import ENDED, TrialProcess, ended, read_end

RAY_FOLDER, EXPERIMENT = "ray", "bareprop"
CONNECT_SECONDS = 10.0


def check_address(address: str | None) -> None:
    """One line, within CONNECT_SECONDS, for a --ray-address nobody answers at (Ray
    itself would retry for minutes)."""
    if not address or address == "auto":
        return
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address}: expected HOST:PORT (what ray start "
                          "--head printed), e.g. 10.0.0.5:6379")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as exc:
        raise ConfigError(f"--ray-address {address}: no Ray cluster answers there "
                          f"({exc.strerror or exc}); start one with ray start --head, or "
                          "leave --ray-address out for a local cluster") from None


def _number_for(folder: Path, trial_id: str) -> tuple[int, bool]:
    """(the trial's NNNN, whether it ran before): the number Tune's trial had, or the
    lowest free one, claimed by an exclusive mkdir (safe across nodes)."""
    ids = folder / RAY_FOLDER / "ids"
    ids.mkdir(parents=True, exist_ok=True)
    known = ids / trial_id
    if known.is_file():
        return int(known.read_text()), True
    number = 0
    while True:
        try:
            (folder / trial_folder(number)).mkdir(parents=True)
            break
        except FileExistsError:
            number += 1
    known.write_text(str(number))
    return number, False


def trainable(config: dict, plan: dict) -> None:
    """One Tune trial: the trial's process, its epochs relayed to Tune."""
    from ray import tune

    from .space import parse_space

    folder = Path(plan["folder"])
    space = parse_space(plan["space"])
    settings = {**plan["settings"], **{p.field: p.value(config[p.field]) for p in space}}
    number, before = _number_for(folder, tune.get_context().get_trial_id())
    configs = folder / RAY_FOLDER / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    (configs / f"{number:04d}.json").write_text(json.dumps({p.field: config[p.field]
                                                            for p in space}))
    if before and ended(folder / trial_folder(number)) is not None:   # it ended before Tune's last saved state knew: tell Tune
        for epoch, acc in enumerate(_val_accuracies(folder / trial_folder(number)), 1):
            tune.report({"val_accuracy": acc, "epoch": epoch, "number": number})
        return
    # in the sweep's folder when this node has it: Tune runs us in a trial folder of its
    # own, where a relative BAREPROP_DATA_DIR would name nothing
    proc = TrialProcess(folder / trial_folder(number), number, settings, plan["threads"],
                        cwd=plan.get("cwd"))
    try:
        while (message := proc.read()) is not None:
            if message.get("event") == "epoch" and message.get("val_accuracy") is not None:
                tune.report({"val_accuracy": message["val_accuracy"],
                             "epoch": message["epoch"], "number": number})
                proc.answer(False)
    finally:
        proc.finish()


def _scheduler(sw):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    if sw.prune == "median":
        return MedianStoppingRule(time_attr="epoch", metric="val_accuracy", mode="max",
                                  grace_period=1, min_samples_required=5)
    if sw.prune == "asha":
        return ASHAScheduler(time_attr="epoch", metric="val_accuracy", mode="max",
                             max_t=sw.epochs, grace_period=1, reduction_factor=3)
    return FIFOScheduler()


def _outcome(sw, number: int, stopped: bool) -> dict:
    """How trial ``number`` ended: its trial.json; for a trial Tune stopped (its worker,
    and with it its process, killed: Ray ends a worker's children), first its folder
    written from the checkpoint of its last epoch, by a process of its own."""
    folder = sw.folder / trial_folder(number)
    if stopped and not (folder / TRIAL).is_file():
        settings = sw.trial_settings(_drawn(sw, number))
        TrialProcess(folder, number, settings, sw.threads, finish="pruned").wait()
    return read_end(folder)


def _drawn(sw, number: int) -> dict:
    """Trial ``number``'s drawn values, from the config Tune gave it (kept beside its
    number by the trainable)."""
    return json.loads((sw.folder / RAY_FOLDER / "configs" / f"{number:04d}.json").read_text())


def _val_accuracies(folder: Path) -> list:
    """Each epoch's validation accuracy, from the trial's metrics.json (checked as any
    run folder's is); [] when it wrote none."""
    from ..errors import ModelFileError
    from ..runs.jsonfiles import read_run_json
    from ..runs.layout import METRICS

    try:
        history = read_run_json(folder / METRICS)["history"]
    except (ModelFileError, OSError):
        return []
    return [e.get("val_accuracy") for e in history]


def _progress(sw):
    """A Tune callback printing a line as each trial ends (what Tune knows then: its
    last reported epoch; sweep.json's rows are written when Tune's run returns)."""
    from ray import tune

    from .record import fmt

    class Progress(tune.Callback):
        def _line(self, trial, how: str) -> None:
            result = trial.last_result or {}
            number = result.get("number")
            params = " ".join(f"{p.field}={fmt(trial.config.get(p.field))}" for p in sw.space)
            acc = result.get("val_accuracy")
            value = f"val {acc:.4f}" if isinstance(acc, float) else "val -"
            print(f"trial {number:04d}  " if isinstance(number, int) else "trial ----  ",
                  f"{params}  {value} after {result.get('epoch', 0)} epochs, {how}",
                  sep="", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            epochs = (trial.last_result or {}).get("epoch", 0)
            self._line(trial, "ended" if epochs >= sw.epochs else "stopped by Tune")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, "failed")

    return Progress()


def start(sw) -> None:
    """ray.init: a local cluster, or the one --ray-address names (the sweep command calls
    this before it claims its folder, so a cluster that is not there leaves none
    behind); a failure is one line."""
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=sw.ray_address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True, logging_level="ERROR",
                 **({} if sw.ray_address else {"num_cpus": sw.jobs * sw.threads}))
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        from ..errors import first_line

        where = f"--ray-address {sw.ray_address}" if sw.ray_address else "a local Ray cluster"
        raise ConfigError(f"{where}: Ray did not start ({first_line(exc)}); check the "
                          "address, or leave --ray-address out") from None


def run_ray(sw, record: dict, save) -> None:
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Ctrl-C and SIGTERM reach the sweep as KeyboardInterrupt, as with the Optuna engine
    # (Tune's own handler would end fit() as if the sweep were done); Tune's state saved
    # so far and each trial's checkpoint are what --resume continues from
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    start(sw)
    try:
        plan = {"folder": str(sw.folder.resolve()), "space": [p.spec() for p in sw.space],
                "settings": sw.settings, "threads": sw.threads, "cwd": os.getcwd()}
        runner = tune.with_resources(tune.with_parameters(trainable, plan=plan),
                                     {"cpu": sw.threads})
        path = sw.folder.resolve() / RAY_FOLDER / EXPERIMENT
        if path.is_dir() and tune.Tuner.can_restore(str(path)):
            tuner = tune.Tuner.restore(str(path), runner, resume_unfinished=True,
                                       resume_errored=False)
        else:
            search = OptunaSearch(space=sw.distributions(), metric="val_accuracy",
                                  mode="max", seed=sw.seed)
            tuner = tune.Tuner(runner, tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(search, max_concurrent=sw.jobs),
                scheduler=_scheduler(sw), num_samples=sw.trials, reuse_actors=False),
                run_config=tune.RunConfig(storage_path=str(path.parent), name=EXPERIMENT,
                                          verbose=0, callbacks=[_progress(sw)]))
        results = tuner.fit()
    finally:
        ray.shutdown()
    _record(sw, record, results)         # each trial's line was said by Progress
    save()


def _record(sw, record: dict, results) -> None:
    """The trials Tune ran, as sweep.json rows (numbered by their folders)."""
    from ..errors import first_line

    rows = {t["number"]: t for t in record["trials"]}
    for result in results:
        trial_id = (result.metrics or {}).get("trial_id")
        known = sw.folder / RAY_FOLDER / "ids" / str(trial_id)
        number = (result.metrics or {}).get("number")
        if number is None and trial_id and known.is_file():
            number = int(known.read_text())
        if number is None:
            continue
        row = rows.setdefault(number, new_trial(number, {}))
        if row not in record["trials"]:
            record["trials"].append(row)
        row["params"] = {p.field: result.config[p.field] for p in sw.space}
        end = _outcome(sw, number, stopped=result.error is None)
        row["val_accuracy"] = _val_accuracies(sw.folder / trial_folder(number))
        state = end.get("state")
        if result.error is not None:
            row.update(state="failed", reason=first_line(result.error))
        elif state in ENDED:
            row.update(state=state, reason=end.get("reason"))
        else:
            row.update(state="failed", reason="its process left no trial.json")
        row["value"] = end.get("value") if row["state"] != "failed" else None
        row["seconds"] = float((result.metrics or {}).get("time_total_s") or 0.0)
    record["trials"].sort(key=lambda t: t["number"])
