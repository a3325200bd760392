"""The run folder: the one owner of what a ``--out`` folder holds and how it is written.

A run folder is what ``bareprop train`` and ``bareprop compare`` write and what
``report``, ``serve``, ``--resume`` and ``export`` read. This package knows its layout
and nothing about training:

    layout.py     the name of every file and folder a run folder holds, and how each
                  is written (whole by rename, appended in place, a folder written into)
    writer.py     the one way bytes go into a run folder: whole files by
                  archive.atomic_write, appends and folders never through a link
    lock.py       claiming a folder for one run: the lock file (whose it is), refusals,
                  default folders, a killed run's temporaries cleared
    process.py    the process a lock names: alive, when it started, which run it is
    jsonfiles.py  metrics.json, compare.json and inspect.json read as untrusted input
    results.py    metrics.json built from a finished run, written with inspect.json
    read.py       readers for any watcher, in bounded memory and never through a link:
                  events.jsonl, a file's new lines, a checkpoint's JSON state, the run
                  folders under a root

It sits low (it imports only ``errors`` and ``archive``), so anything from ``train`` to
``web`` may use it. Not here: model files and checkpoints themselves (the model-file
module and train/checkpoint.py), the web app's JSON (web/runs.py), the HTML report.
"""
