"""The Optuna engine: one study named ``bareprop`` in DIR/optuna.journal (Optuna's
JournalStorage on its file backend: no server, safe for several processes), its TPE
sampler seeded by --seed, and up to --jobs trial processes at once on this machine.

This process alone talks to the study: it asks for a trial when a slot is free, starts
the trial's process (trials.py), reports each epoch's validation accuracy to the study
and answers ``prune`` when the pruner says so, and tells the study how the trial ended.
With --jobs 1 a trial is asked for only once the one before it is told, so a seeded
sweep draws the same trials in the same order every time.

Interrupted (Ctrl-C, SIGTERM, a kill), the study holds the unfinished trials as RUNNING
and their folders the checkpoint of their last epoch: ``--resume`` runs them on from
there, and asks for new trials only after.
"""
from __future__ import annotations

import selectors
import subprocess
import time

import numpy as np

from ..errors import BarepropError, ConfigError
from ..runs.layout import JOURNAL
from .record import new_trial, trial_folder
from .trials import TrialProcess, end_message, ended


#: trials that must complete before the median pruner compares a trial with them.
#: Optuna's default is 5; with 3 the 24-trial Fashion-MNIST sweep of docs/sweeps.md
#: spent fewer trial-epochs for the same best (figures there).
STARTUP_TRIALS = 3


def pruner(kind: str):
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=0)
    if kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def study(sw):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = sw.folder / JOURNAL
    if journal.is_symlink() or (journal.exists() and not journal.is_file()):
        raise ConfigError(f"{journal} is not a regular file (a link is never followed); "
                          "start the sweep in a new --out folder")
    try:
        storage = JournalStorage(JournalFileBackend(str(journal)))
        study = optuna.create_study(study_name="bareprop", storage=storage,
                                    pruner=pruner(sw.prune), direction="maximize",
                                    load_if_exists=True)
    except (ValueError, KeyError, TypeError, OSError) as exc:   # json errors are ValueErrors
        raise ConfigError(f"{journal} is damaged ({type(exc).__name__}); the trials' run "
                          "folders are intact, but the sweep cannot go on: start a new one "
                          "in another --out folder") from None
    # A resumed study's sampler starts afresh in this process: seeded by --seed alone it
    # would draw the first trials' values again. Seeded by (--seed, trials so far) it
    # draws on, and a fresh study still gets exactly --seed.
    asked = len(study.get_trials(deepcopy=False))
    seed = sw.seed if asked == 0 else int(np.random.SeedSequence([sw.seed, asked])
                                            .generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=sw.jobs > 1)
    return study


ORPHAN_WAIT = 120.0     # s: the longest an epoch of a killed sweep's trial may still run


def wait_for_orphan(folder, wait: float = ORPHAN_WAIT) -> None:
    """A sweep killed outright leaves its trial processes to notice at their epoch's end;
    one resumed at once must not start a trial whose folder such a process still holds."""
    from ..runs.lock import live_holder

    deadline = time.monotonic() + wait
    while folder.is_dir() and live_holder(folder) is not None and time.monotonic() < deadline:
        time.sleep(0.5)


class Loop:
    """The running sweep: ``run()`` until the wanted trials have ended."""

    def __init__(self, sw, record: dict, say, save, clock=None):
        import optuna

        self.optuna = optuna
        self.sw, self.record, self.say, self.save = sw, record, say, save
        self.clock = clock or time.perf_counter      # the sweep's seconds, for sweep.png
        self.study = study(sw)
        self.rows = {t["number"]: t for t in record["trials"]}
        self.running: dict[int, tuple] = {}          # number -> (TrialProcess, Trial)
        self.reported: dict[int, set] = {}           # number -> epochs the study has
        self.epochs: dict[int, int] = {}             # number -> the epochs it trains
        self.selector = selectors.DefaultSelector()
        # trials a killed or interrupted sweep left RUNNING: run on from their checkpoint
        self.unfinished = [t for t in self.study.get_trials(deepcopy=False)
                           if t.state == optuna.trial.TrialState.RUNNING]

    def asked(self) -> int:
        return len(self.study.get_trials(deepcopy=False))

    def _row(self, number: int, drawn: dict) -> dict:
        """Trial ``number``'s row of sweep.json (added when it has none yet)."""
        if number not in self.rows:
            self.rows[number] = new_trial(number, drawn)
            self.record["trials"].append(self.rows[number])
        return self.rows[number]

    def _start(self, trial, drawn: dict, reported=()) -> None:
        number = trial.number
        self.reported[number] = set(reported)
        row = self._row(number, drawn)
        row.update(state="running", reason=None)
        folder = self.sw.folder / trial_folder(number)
        settings = self.sw.trial_settings(drawn)
        self.epochs[number] = int(settings.get("epochs") or self.sw.epochs)
        wait_for_orphan(folder)
        try:
            proc = TrialProcess(folder, number, settings, self.sw.threads)
        except BarepropError as exc:                  # a link where its folder goes
            self._tell(trial, row, end_message("failed", reason=str(exc)))
            return
        self.running[number] = (proc, trial)
        self.selector.register(proc.stdout, selectors.EVENT_READ, number)

    def _fill(self) -> None:
        while len(self.running) < self.sw.jobs:
            if self.unfinished:
                frozen = self.unfinished.pop(0)
                trial = self.optuna.trial.Trial(self.study, frozen._trial_id)
                end = ended(self.sw.folder / trial_folder(frozen.number))
                if end is not None:      # it ended, and the sweep was killed before telling
                    self._tell(trial, self._row(frozen.number, frozen.params), end)
                    continue
                self._start(trial, frozen.params, frozen.intermediate_values)
            elif self.asked() < self.sw.trials:
                trial = self.study.ask(self.sw.distributions())
                self._start(trial, trial.params)
            else:
                return

    def _epoch(self, number: int, message: dict) -> None:
        proc, trial = self.running[number]
        row, epoch = self.rows[number], int(message["epoch"])
        acc = message.get("val_accuracy")
        del row["val_accuracy"][epoch - 1:]           # a resumed trial says them again
        del row.setdefault("at", [])[epoch - 1:]
        row["val_accuracy"].append(acc)
        row["at"].append(round(self.clock(), 3))
        prune = False
        if acc is not None:
            self._report(number, trial, epoch, acc)
            prune = epoch < self.epochs[number] and trial.should_prune()
        proc.answer(prune)
        self.save()                  # sweep.json follows the epochs (the web app reads it)

    def _resumed(self, number: int, message: dict) -> None:
        """A trial run on from its checkpoint: its epochs so far are the checkpoint's."""
        trial, row = self.running[number][1], self.rows[number]
        accs = [a for a in message.get("val_accuracy") or []]
        row["val_accuracy"], row["resumed_after"] = accs, len(accs)
        row["at"] = (row.get("at") or [])[:len(accs)]
        row["at"] += [round(self.clock(), 3)] * (len(accs) - len(row["at"]))
        for epoch, acc in enumerate(accs, 1):
            if acc is not None:
                self._report(number, trial, epoch, acc)

    def _report(self, number: int, trial, epoch: int, acc: float) -> None:
        """Report an epoch's accuracy to the study once (a resumed trial says its
        checkpoint's epochs again, some of which the study has)."""
        if epoch not in self.reported[number]:
            trial.report(acc, epoch)
            self.reported[number].add(epoch)

    def _end(self, number: int) -> None:
        proc, trial = self.running.pop(number)
        self.selector.unregister(proc.stdout)
        end = proc.finish()
        row = self.rows[number]
        row["seconds"] = row.get("seconds", 0.0) + proc.seconds()
        if end.get("state") == "stopped":             # interrupted: stays RUNNING
            row.update(state="running", reason="interrupted")
            self.save()
            return
        self._tell(trial, row, end)

    def _tell(self, trial, row: dict, end: dict) -> None:
        """Tell the study how the trial ended (its process's end message)."""
        state = end.get("state")
        TS = self.optuna.trial.TrialState
        row.update(state=state, reason=end.get("reason"), value=end.get("value"))
        if state == "complete":
            self.study.tell(trial, end["value"])
        elif state == "pruned":
            self.study.tell(trial, state=TS.PRUNED)
        else:
            row["state"] = "failed"
            self.study.tell(trial, state=TS.FAIL)
        self.say(row)
        self.save()

    def run(self) -> None:
        try:
            self._fill()
            while self.running:
                for key, _ in self.selector.select(timeout=1.0):
                    number = key.data
                    proc = self.running[number][0]
                    message = proc.read()
                    if message is None:
                        self._end(number)
                    elif message.get("event") == "epoch":
                        self._epoch(number, message)
                    elif message.get("event") == "resumed":
                        self._resumed(number, message)
                self._fill()
        except KeyboardInterrupt:
            self.stop()
            raise

    def stop(self, grace: float = 60.0) -> None:
        """Ask every trial process to stop, and wait for them (each keeps its last
        epoch's checkpoint); the study keeps them RUNNING, for --resume."""
        for proc, _ in self.running.values():
            proc.interrupt()
        deadline = time.monotonic() + grace
        for number in list(self.running):
            proc = self.running[number][0]
            try:        # its few last lines fit the pipe: wait first, then read them
                proc.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.proc.kill()
            while proc.read() is not None:
                pass
            self._end(number)
