"""Links planted where bareprop writes in place in a run folder (events.jsonl, job.log,
tensorboard/): never followed. The one opener (runs.writer) refuses them when a file is
opened; ``--out``, ``--resume`` and the web app's resume refuse the folder before
anything runs, in one line naming the link and the fix. Files written whole (the JSON,
the plots, metrics.csv) replace a link instead (test_run_folders.py)."""
import json
import os

import pytest

from bareprop.cli.main import main
from bareprop.errors import ConfigError, OutputError
from bareprop.runs import layout
from bareprop.runs.writer import check_links, open_append, real_folder, write_whole
from bareprop.train.checkpoint import load_checkpoint, save_checkpoint

from oneline import one_line
from synthetic import write_dataset

TINY = ["--no-verify", "--quiet", "--hidden", "8", "--epochs", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist")


@pytest.fixture
def outside(tmp_path):
    """A folder outside the run with a file and a folder a planted link may point at."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim").write_bytes(b"precious")
    (out / "dir").mkdir()
    return out


def untouched(outside):
    assert (outside / "victim").read_bytes() == b"precious"
    assert sorted(p.name for p in outside.iterdir()) == ["dir", "victim"]
    assert list((outside / "dir").iterdir()) == []


def plant(run, name, outside):
    """A link at ``run``/``name`` to the outside file (a folder for tensorboard ones)."""
    (run / name).parent.mkdir(parents=True, exist_ok=True)
    target = outside / ("dir" if name.startswith(layout.TENSORBOARD) else "victim")
    (run / name).symlink_to(target)


# -- the opener --------------------------------------------------------------------------
def test_open_append_refuses_a_link_at_the_name_or_on_the_way(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").symlink_to(outside / "victim")
    with pytest.raises(OutputError, match="events.jsonl: it is a symbolic link"):
        open_append(run, "events.jsonl")
    (run / "sub").symlink_to(outside / "dir")
    with pytest.raises(OutputError, match="sub: it is a symbolic link"):
        open_append(run, "sub/job.log")
    untouched(outside)
    with open_append(run, "job.log", encoding="utf-8") as f:     # a plain file: appended
        f.write("a\n")
    with open_append(run, "job.log") as f:
        f.write(b"b\n")
    assert (run / "job.log").read_text() == "a\nb\n"


def test_open_append_refuses_a_hard_link_and_a_fifo_without_waiting(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    os.link(outside / "victim", run / "events.jsonl")
    with pytest.raises(OutputError, match="other hard links"):
        open_append(run, "events.jsonl")
    os.mkfifo(run / "job.log")                      # no reader: a plain open would block
    with pytest.raises(OutputError, match="job.log"):
        open_append(run, "job.log")
    untouched(outside)


def test_real_folder_refuses_a_link_and_write_whole_replaces_one(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    (run / "tensorboard").symlink_to(outside / "dir")
    with pytest.raises(OutputError, match="tensorboard: it is a symbolic link"):
        real_folder(run, "tensorboard/batches")
    (run / "tensorboard").unlink()
    assert real_folder(run, "tensorboard/epochs").is_dir()
    (run / "metrics.csv").symlink_to(outside / "victim")
    write_whole(run, "metrics.csv", b"epoch\n1\n")
    assert not (run / "metrics.csv").is_symlink()
    assert (run / "metrics.csv").read_bytes() == b"epoch\n1\n"
    untouched(outside)


def test_check_links_names_the_first_link(tmp_path, outside):
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    check_links(run)                                    # nothing planted: fine
    plant(run, "tensorboard/batches", outside)
    with pytest.raises(ConfigError, match="tensorboard/batches is a symbolic link where "
                                          "bareprop writes TensorBoard logs; .* remove it"):
        check_links(run)


# -- the writers that append ---------------------------------------------------------------
def test_the_event_log_never_appends_through_a_link(tmp_path, outside):
    from bareprop.train.events import EventLog

    run = tmp_path / "run"
    run.mkdir()
    plant(run, layout.EVENTS, outside)
    log = EventLog(run / layout.EVENTS)
    with pytest.raises(OutputError, match="symbolic link"):
        log.state("running")
    log.close()
    untouched(outside)


def test_tensorboard_logs_never_go_through_a_linked_folder(tmp_path, outside, rng):
    pytest.importorskip("tensorboardX")
    import bareprop as bp
    from bareprop.train.loggers import TensorBoardLogger

    run = tmp_path / "run"
    run.mkdir()
    plant(run, layout.TENSORBOARD, outside)
    model = bp.Sequential(bp.Linear(4, 2))
    x, y = rng.normal(size=(8, 4)).astype("float32"), rng.integers(0, 2, 8)
    with pytest.raises(OutputError, match="tensorboard: it is a symbolic link"):
        bp.fit(model, bp.CrossEntropyLoss(), bp.SGD(model.parameters(), lr=0.1), (x, y), 1,
               batch_size=4, callbacks=[TensorBoardLogger(run / "tensorboard")])
    untouched(outside)


def test_a_web_job_never_appends_its_log_through_a_link(tmp_path, outside):
    from bareprop.web.jobs import JobManager

    root = tmp_path / "runs"
    run = root / "r1"
    run.mkdir(parents=True)
    (run / layout.CHECKPOINT).write_bytes(b"resumable")   # resume() only checks it is there
    plant(run, layout.JOB_LOG, outside)
    jobs = JobManager(root, python="true", poll=0.01)      # `true`: nothing is trained
    try:
        with pytest.raises(ConfigError, match="job.log is a symbolic link where bareprop "
                                              "appends the job's output"):
            jobs.resume("r1", run)
        (run / layout.JOB_LOG).unlink()
        plant(run, layout.EVENTS, outside)
        with pytest.raises(ConfigError, match="events.jsonl is a symbolic link"):
            jobs.resume("r1", run)
    finally:
        jobs.close()
    untouched(outside)


# -- --out and --resume --------------------------------------------------------------------
@pytest.mark.parametrize("name", [layout.EVENTS, layout.JOB_LOG, layout.TENSORBOARD,
                                  f"{layout.TENSORBOARD}/epochs"])
def test_out_refuses_a_folder_with_a_link_where_train_writes(tmp_path, data, capsys,
                                                            outside, name):
    run = tmp_path / "run"
    plant(run, name, outside)
    args = ["train", "--data-dir", str(data), *TINY, "--out", str(run), "--events",
            "--log", "tensorboard,csv"]
    if name.startswith(layout.TENSORBOARD):
        pytest.importorskip("tensorboardX")
    assert main(args) == 2
    one_line(capsys, f"{run / name} is a symbolic link", "remove it")
    assert main(args + ["--overwrite"]) == 2               # --overwrite does not follow it
    one_line(capsys, f"{run / name} is a symbolic link")
    untouched(outside)
    assert not (run / layout.MODEL).exists() and not os.path.lexists(run / layout.LOCK)


def test_resume_refuses_a_folder_with_a_link_where_train_writes(tmp_path, data, capsys,
                                                               outside):
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(data), "--no-verify", "--quiet", "--hidden", "8",
                 "--epochs", "2", "--schedule", "none", "--events", "--out", str(run)]) == 0
    state = load_checkpoint(run / layout.CHECKPOINT)      # back to "killed after epoch 1"
    state["epoch"], state["history"]["epochs"] = 1, state["history"]["epochs"][:1]
    save_checkpoint(run / layout.CHECKPOINT, state)
    for name in (layout.MODEL, layout.METRICS):
        (run / name).unlink()
    (run / layout.EVENTS).unlink()
    plant(run, layout.EVENTS, outside)
    capsys.readouterr()
    resume = ["train", "--resume", str(run), "--data-dir", str(data), "--no-verify", "--quiet"]
    assert main(resume) == 2
    one_line(capsys, f"{run / layout.EVENTS} is a symbolic link", "remove it")
    untouched(outside)
    (run / layout.EVENTS).unlink()
    os.link(outside / "victim", run / layout.EVENTS)    # a hard link: appended through too
    assert main(resume) == 2
    one_line(capsys, "has other hard links")
    (run / layout.EVENTS).unlink()
    assert main(resume) == 0 and load_checkpoint(run / layout.CHECKPOINT)["epoch"] == 2
    untouched(outside)


def test_wrote_names_every_file_of_the_run(tmp_path, data, capsys):
    run = tmp_path / "run"
    loud = [a for a in TINY if a != "--quiet"]          # --quiet prints the result alone
    assert main(["train", "--data-dir", str(data), *loud, "--out", str(run),
                 "--log", "csv"]) == 0
    wrote = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("wrote ")]
    assert wrote == [f"wrote {run}/model.npz, metrics.json, inspect.json, checkpoint.npz, "
                     "loss.png, metrics.csv"], wrote
    for name in ("model.npz", "metrics.json", "inspect.json", "checkpoint.npz", "loss.png",
                 "metrics.csv"):
        assert (run / name).is_file()
    assert json.loads((run / layout.METRICS).read_text())["epochs_run"] == 1
