"""The names of everything a run folder holds, and how bareprop writes each.

==================  ======================================  =====================
name                what it is (who writes it)              how it is written
==================  ======================================  =====================
model.npz           the trained model (train, at its end)   whole, by rename
checkpoint.npz      the state to resume (train, each epoch) whole, by rename
metrics.json        results and history (train, at its end) whole, by rename
inspect.json        activation/gradient histograms (train)  whole, by rename
loss.png            the loss curves (train)                 whole, by rename
compare.json        bareprop vs its twin (compare)          whole, by rename
compare.png         the twin's curves (compare)             whole, by rename
report.html         the HTML report (report, serve)         whole, by rename
metrics.csv         one row per epoch (train --log csv)     whole, by rename
events.jsonl        live events (train --events, serve)     appended in place
job.log             a web job's stdout and stderr (serve)   appended in place
tensorboard/        event files (train --log tensorboard)   a folder written into
trial.json          a sweep trial's outcome (its process)   whole, by rename
trial.log           a sweep trial's stderr (sweep)          appended in place
sweep.json          a sweep's trials (sweep, sweep folder)  whole, by rename
sweep.png           a sweep's figure (sweep, sweep folder)  whole, by rename
optuna.journal      Optuna's study (sweep folder)           Optuna's file journal
.bareprop.lock      whose run holds the folder (lock.py)    created exclusively
==================  ======================================  =====================

A file written whole goes to a fresh temporary beside it and is renamed over its name,
so a link planted under that name is replaced, never followed. A file appended to, or a
folder written into, would be followed: no link may stand at those names (IN_PLACE),
which is why a run folder holding one is refused (writer.check_links).

That temporary is ``.<name>.<8 random characters>.tmp``; a run killed while writing one
leaves it behind, and the next run to hold the folder removes those of HOLDER_WRITES
(archive.remove_stale_temps).

A new file in a run folder: add its name here, with how it is written, and write it
through writer.py.
"""
from __future__ import annotations

import re

MODEL = "model.npz"
CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.json"
INSPECT = "inspect.json"
LOSS_PLOT = "loss.png"
COMPARE = "compare.json"
COMPARE_PLOT = "compare.png"
REPORT = "report.html"
METRICS_CSV = "metrics.csv"
EVENTS = "events.jsonl"
JOB_LOG = "job.log"
TENSORBOARD = "tensorboard"
#: tensorboard/'s own folders (train/loggers.py's TensorBoardLogger)
TENSORBOARD_RUNS = ("batches", "epochs")
LOCK = ".bareprop.lock"
TRIAL = "trial.json"
TRIAL_LOG = "trial.log"
SWEEP = "sweep.json"
SWEEP_PLOT = "sweep.png"
JOURNAL = "optuna.journal"
TRIALS = "trials"

#: what makes a folder hold a finished or unfinished training run
TRAIN_FILES = (MODEL, CHECKPOINT, METRICS)
#: what makes a folder hold a compare result (a train run beside it is welcome: the
#: report then shows both)
COMPARE_FILES = (COMPARE,)
#: the JSON files a reader checks field by field (jsonfiles.read_run_json)
JSON_FILES = (METRICS, COMPARE, INSPECT)
#: what makes a folder hold a sweep (its trials are run folders under trials/)
SWEEP_FILES = (SWEEP, JOURNAL, TRIALS)
#: written whole, by rename: a link at one of these names is replaced, not followed
WHOLE = (MODEL, CHECKPOINT, METRICS, INSPECT, LOSS_PLOT, COMPARE, COMPARE_PLOT, REPORT,
         METRICS_CSV, TRIAL, SWEEP, SWEEP_PLOT)
#: written only by the run holding the folder's lock: a temporary of one of these found
#: by the next holder is a killed writer's, never a live one's (report.html is not here:
#: ``bareprop report`` and the web app write it without the lock)
HOLDER_WRITES = tuple(n for n in WHOLE if n != REPORT)
#: appended to, or written into, in place: a link at one of these would be followed
IN_PLACE = (EVENTS, JOB_LOG, TENSORBOARD, TRIAL_LOG,
            *(f"{TENSORBOARD}/{run}" for run in TENSORBOARD_RUNS))

#: the name of a run folder that is listed and served: letters, digits, '.', '_' and
#: '-', not starting with '.' (a default folder is <time>-<random>)
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
