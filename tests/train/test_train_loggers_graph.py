"""TensorBoardLogger's model graph comes from its caller: train/ never imports the ONNX
export (it sits on a higher floor); ``graph=bp.save_onnx`` (what ``bareprop train``
passes) puts the graph in the Graphs tab, a graph writer that refuses costs only the
graph, and no writer means no graph."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.errors import ConfigError, ModelFileError
from bareprop.train.loggers import TensorBoardLogger, make_loggers

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")


def fit_one_epoch(logger):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40)
    model = bp.Sequential(bp.Linear(6, 5, rng=0), bp.ReLU(), bp.Linear(5, 3, rng=1),
                          input_shape=(6,))
    bp.fit(model, bp.CrossEntropyLoss(), bp.SGD(model.parameters(), lr=0.1), (x, y), 1,
           batch_size=20, callbacks=[logger])
    return model


def graph_nodes(folder):
    ea = event_accumulator.EventAccumulator(str(folder))
    ea.Reload()
    return {n.op for n in ea.Graph().node} if ea.Tags()["graph"] else set()


def test_the_graph_is_what_the_callers_writer_exports(tmp_path):
    pytest.importorskip("onnx")
    calls = []

    def writer(model, path):
        calls.append(model)
        bp.save_onnx(model, path)

    model = fit_one_epoch(TensorBoardLogger(tmp_path / "tb", graph=writer))
    assert calls == [model]
    assert "Gemm" in graph_nodes(tmp_path / "tb" / "epochs")


def test_no_writer_no_graph_and_a_refusing_writer_costs_only_the_graph(tmp_path, capsys):
    fit_one_epoch(TensorBoardLogger(tmp_path / "none"))
    assert graph_nodes(tmp_path / "none" / "epochs") == set()

    pytest.importorskip("onnx")

    def refuse(model, path):
        raise ModelFileError("no operator for this layer")

    fit_one_epoch(TensorBoardLogger(tmp_path / "refused", graph=refuse))
    assert "TensorBoard graph skipped (no operator for this layer)" in capsys.readouterr().err
    ea = event_accumulator.EventAccumulator(str(tmp_path / "refused" / "epochs"))
    ea.Reload()
    assert "train_loss" in ea.Tags()["scalars"] and not ea.Tags()["graph"]


def test_bp_tensorboard_logger_writes_the_graph_by_default(tmp_path):
    """The library's bp.TensorBoardLogger (interop/tensorboard.py) brings the exporter as
    its default writer: a user who logs to TensorBoard gets the Graphs tab, as before."""
    pytest.importorskip("onnx")
    logger = bp.TensorBoardLogger(tmp_path / "tb")
    assert logger.graph is bp.save_onnx and isinstance(logger, TensorBoardLogger)
    fit_one_epoch(logger)
    assert "Gemm" in graph_nodes(tmp_path / "tb" / "epochs")
    assert bp.TensorBoardLogger(tmp_path / "no", graph=None).graph is None


def test_graph_true_is_refused_with_the_fix_and_make_loggers_passes_the_writer(tmp_path):
    with pytest.raises(ConfigError, match=r"graph=bp\.save_onnx"):
        TensorBoardLogger(tmp_path / "tb", graph=True)
    (tb,) = make_loggers(["tensorboard"], tmp_path, graph=bp.save_onnx)
    assert tb.graph is bp.save_onnx and tb.logdir == tmp_path / "tensorboard"
    assert make_loggers(["tensorboard"], tmp_path)[0].graph is None
