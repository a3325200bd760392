"""bareprop: a from-scratch NumPy neural-network library with hand-written backprop.

    import bareprop as bp
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 128), bp.ReLU(), bp.Linear(128, 10))
    history = bp.fit(model, bp.CrossEntropyLoss(), bp.Adam(model.parameters(), lr=1e-3),
                     (x_train, y_train), epochs=3, batch_size=128)
    proba = bp.predict_proba(model, x_test)

The names below are imported on first use (PEP 562), so ``import bareprop`` costs no
NumPy import: the ``bareprop`` command starts inside its own Ctrl-C handler instead of
dying with a traceback from an import when interrupted at start-up. The layers are
whatever core/catalog.py declares public (``bp.Linear``, ``bp.Conv2d`` ...): no list of
them is kept here.
"""
import importlib as _importlib

from .errors import BarepropError, ConfigError, DataError, ModelFileError, TrainingDiverged

__version__ = "0.1.0"

# public name -> the module it comes from (the layers come from the catalog, below)
_LAZY = {
    **dict.fromkeys(["CrossEntropyLoss", "MSELoss", "Module", "Parameter", "gradcheck",
                     "init", "register_layer", "walk"], ".core"),
    **dict.fromkeys(["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop",
                     "clip_grad_norm_", "clip_grad_value_"], ".optim"),
    **dict.fromkeys(["load", "save"], ".modelfile"),
    **dict.fromkeys(["Predictor", "predict_proba"], ".inference"),
    **dict.fromkeys(["to_onnx", "save_onnx"], ".interop.onnx_export"),
    **dict.fromkeys(["load_state_dict_from", "save_safetensors", "torch_state_dict"],
                    ".interop.weights"),
    **dict.fromkeys(["CSVLogger"], ".train.loggers"),
    **dict.fromkeys(["TensorBoardLogger"], ".interop.tensorboard"),
    **dict.fromkeys(["Callback", "EarlyStopping", "History", "LRSchedule", "MaxNorm",
                     "ModelCheckpoint", "ProgressBar", "TrainStep", "evaluate", "fit",
                     "train_step", "lr_find", "LRFindResult"], ".train"),
}
# submodule -> its module (``bp.io`` is the model-file module's name before it was renamed)
_SUBMODULES = {name: f".{name}" for name in ("core", "optim", "data", "train", "modelfile",
                                            "inference", "experiment", "interop", "fast",
                                            "explain")}
_SUBMODULES["io"] = ".modelfile"
_ERRORS = ["BarepropError", "ConfigError", "DataError", "ModelFileError", "TrainingDiverged"]


def _layers() -> dict:
    return _importlib.import_module(".core", __name__).public_layers()


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(_SUBMODULES[name], __name__)
    elif name == "__all__":
        value = sorted({*_LAZY, *_layers(), *_ERRORS, "data"})
    elif not name.startswith("_") and name in _layers():
        value = _layers()[name]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value          # once imported, a plain attribute
    return value


def __dir__():
    return sorted({*(n for n in globals() if not n.startswith("_")), *_LAZY, *_SUBMODULES,
                   *_layers(), "__version__"})
