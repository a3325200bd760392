"""Run under mpirun by test_distributed.py: the bareprop CLI with one rank made to fail
at a chosen training step, to prove that the job then ends on every rank.

    BAREPROP_TEST_FAULT=RANK:STEP:HOW:STAMP mpirun -n K python tests/helpers/mpi_fault.py train ...

HOW: kill (SIGKILL itself: a rank that dies), raise (a RuntimeError: a bug), error (an
OutputError: a bareprop error on that rank alone). STAMP: a file that receives the time
of the failure.
"""
import os
import signal
import sys
import time
from pathlib import Path

from bareprop.cli.main import main
from bareprop.errors import OutputError
from bareprop.train import step as step_module

rank, at, how, stamp = os.environ["BAREPROP_TEST_FAULT"].split(":")
if os.environ.get("OMPI_COMM_WORLD_RANK") == rank:
    original, calls = step_module.TrainStep.__call__, [0]

    def failing(self, x, y):
        calls[0] += 1
        if calls[0] == int(at):
            Path(stamp).write_text(repr(time.time()))
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if how == "error":
                raise OutputError("cannot write the shard log: disk full (injected)")
            raise RuntimeError("injected failure")
        return original(self, x, y)

    step_module.TrainStep.__call__ = failing

sys.exit(main(sys.argv[1:]))
