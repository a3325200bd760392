"""Weights files shared with PyTorch and Keras: safetensors and ``.npz``, never pickle.

Export: ``save_safetensors(model, path)`` writes every parameter and buffer under the
name the model's PyTorch twin (reference/torch_twin.py) gives it in ``state_dict()``:
``0.weight``, ``0.bias``, ``1.running_mean``, ``1.running_var`` and the
``1.num_batches_tracked`` torch keeps beside BatchNorm's running statistics (0 here:
bareprop's BatchNorm always uses its momentum, and torch reads the count only when
momentum is None). So ``twin.load_state_dict(safetensors.torch.load_file(path))`` works.

Import: ``load_state_dict_from(model, path)`` reads a weights file (safetensors, ``.npz``,
or the initializers of an ONNX file, such as bareprop's export or ``torch.onnx.export``'s,
whose names are the state dict's; the graph's other constants are ignored) into a
bareprop model whose architecture matches, in one of two layouts:
  torch  names as above (a common prefix such as ``module.`` or ``net.`` is dropped;
         ``num_batches_tracked`` is ignored), PyTorch's layouts, which are bareprop's
  keras  ``np.savez(path, *keras_model.get_weights())``: arrays ``arr_0 .. arr_{n-1}`` in
         Keras' order (kernel, bias; gamma, beta, moving mean, moving variance), kernels
         transposed back ((kh, kw, C, O) -> (O, C, kh, kw), (in, out) -> (out, in)), and
         the Dense after a channels-last Flatten has its rows reordered from (H, W, C)
         to bareprop's (C, H, W)
Anything else (a torch.save pickle, an HDF5 file, a truncated or oversized file, wrong
or missing names, a name given twice, a wrong shape or dtype, NaN) is refused with one
line before the model changes.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np

from .. import core
from . import keras_layout
from ..archive import MAX_ARCHIVE_BYTES, atomic_write, read_npz
from ..errors import ConfigError, ModelFileError, first_line

LAYOUTS = ("auto", "torch", "keras")
_KERAS_KEY = re.compile(r"arr_(\d+)")
_FLOATS = (np.float16, np.float32, np.float64)
_SHOW = 4                           # names listed in a one-line error before "..."
_SAFETENSORS_DTYPES = ("F16", "F32", "F64", "I64", "I32", "BOOL")
_NO_PICKLE = ("bareprop never unpickles: save the weights with safetensors.torch.save_file("
              "model.state_dict(), 'weights.safetensors')")


def _safetensors_numpy():
    try:
        import safetensors.numpy
    except ImportError:
        raise ConfigError("safetensors files need the safetensors package: pip install "
                          "'bareprop[safetensors]'") from None
    return safetensors.numpy


# -- export ------------------------------------------------------------------------------
def torch_state_dict(model: core.Module) -> dict[str, np.ndarray]:
    """``model.state_dict()`` plus what each layer's catalog entry says PyTorch keeps
    beside it (``torch_extra``: BatchNorm's int64 0-d ``num_batches_tracked``), each after
    its layer's arrays: exactly the names and shapes of the PyTorch twin's state_dict."""
    state = {}
    for step in core.walk(model):
        p = f"{step.where}." if step.where else ""
        state.update({p + k: v for k, v in step.layer.state_dict().items()})
        entry = core.info(step.layer)
        if entry is not None and entry.torch_extra is not None:
            state.update({p + k: v for k, v in entry.torch_extra(step.layer).items()})
    return state


def _torch_only(model: core.Module) -> set[str]:
    """The names torch_state_dict adds beyond bareprop's own state (read, never loaded)."""
    return set(torch_state_dict(model)) - set(model.state_dict())


def save_safetensors(model: core.Module, path, metadata: dict | None = None) -> Path:
    """Write ``torch_state_dict(model)`` to ``path`` (safetensors, atomically); string
    ``metadata`` goes in the file's ``__metadata__`` header."""
    st = _safetensors_numpy()
    # np.array, not ascontiguousarray: that makes the 0-d num_batches_tracked 1-d
    state = {k: np.array(v, order="C") for k, v in torch_state_dict(model).items()}
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    atomic_write(path, st.save(state, metadata=meta or None))
    return Path(path)


# -- reading a file ------------------------------------------------------------------------
def _kind(path: Path, head: bytes) -> str:
    """What the first bytes say the file is: npz, safetensors, or a refusal."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"                         # a zip: np.savez, or torch.save's zip (below)
    if len(head) >= 9 and head[8:9] == b"{":       # u64 header length, then JSON
        return "safetensors"                         # (checked first: a length of 128 is \x80)
    if head[:1] == b"\x80" or head[:2] in (b"(d", b"}q", b"(l"):
        raise ModelFileError(f"{path}: a pickle (torch.save) file; {_NO_PICKLE}")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        raise ModelFileError(f"{path}: an HDF5 (Keras .h5) file, which bareprop does not "
                             "read: save the weights with np.savez('weights.npz', "
                             "*model.get_weights())")
    if path.suffix.lower() == ".onnx" or head[:1] == b"\x08":   # ModelProto: ir_version first
        return "onnx"
    raise ModelFileError(f"{path}: not a safetensors, .npz or ONNX weights file "
                         "(unrecognised first bytes); export it with safetensors or np.savez")


def _check_file(path: Path) -> int:
    """The size of the regular file at ``path`` (links followed); one line otherwise."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        what = "a broken symlink" if os.path.islink(path) else "no such file"
        raise ModelFileError(f"{path}: {what}; give the path of a weights file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{path}: a directory, not a weights file; give the "
                             ".safetensors, .npz or .onnx file inside it")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"{path}: not a regular file, so not a weights file")
    if st.st_size > MAX_ARCHIVE_BYTES:
        raise ModelFileError(f"{path}: {st.st_size:,} bytes, more than the "
                             f"{MAX_ARCHIVE_BYTES >> 30} GiB a weights file may hold")
    return st.st_size


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Arrays of a safetensors file, its header checked against the file's size first
    (a declared shape the data cannot hold is refused before anything is allocated)."""
    size = _check_file(path)
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= min(size - 8, 100 << 20):
            raise ModelFileError(f"{path}: not a readable safetensors file (its header length "
                                 f"{n} does not fit a file of {size} bytes: truncated?)")
        try:
            header = json.loads(f.read(n).decode())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ModelFileError(f"{path}: not a readable safetensors file (its header is "
                                 f"not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a readable safetensors file (its header is not "
                             "a JSON object)")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if dtype not in _SAFETENSORS_DTYPES:
            raise ModelFileError(f"{path}: tensor {name!r} has dtype {dtype!r}; bareprop "
                                 f"reads {', '.join(_SAFETENSORS_DTYPES)} (save it as F32)")
    st = _safetensors_numpy()
    try:
        return st.load_file(str(path))
    except Exception as exc:   # the Rust parser's SafetensorError and numpy's own errors
        raise ModelFileError(f"{path}: not a readable safetensors file "
                             f"({first_line(exc)})") from None


def _read_onnx(path: Path) -> dict[str, np.ndarray]:
    """The initializers of an ONNX file (protobuf: parsing runs no code), each checked to
    hold the bytes its dims declare; external data and a name given twice are refused."""
    from .onnx_export import _onnx

    onnx = _onnx()
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:   # protobuf's DecodeError and onnx's own
        raise ModelFileError(f"{path}: not a readable ONNX file ({first_line(exc)})") \
            from None
    arrays = {}
    for t in proto.graph.initializer:
        if t.name in arrays:            # which one a runtime uses is undefined: ask
            raise ModelFileError(f"{path}: initializer {t.name!r} appears more than once; "
                                 "an ONNX graph names each initializer once: export it again")
        declared = math.prod(t.dims)
        if any(d < 0 for d in t.dims) or declared > MAX_ARCHIVE_BYTES // 4:
            raise ModelFileError(f"{path}: initializer {t.name!r} declares shape "
                                 f"{tuple(t.dims)}, beyond what a weights file may hold")
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelFileError(f"{path}: initializer {t.name!r} keeps its data in another "
                                 "file; bareprop reads self-contained ONNX files only")
        try:
            arrays[t.name] = onnx.numpy_helper.to_array(t)
        except Exception as exc:   # dims that the data cannot fill, unknown data types
            raise ModelFileError(f"{path}: initializer {t.name!r} is damaged "
                                 f"({first_line(exc)})") from None
    return arrays


def read_weights(path) -> dict[str, np.ndarray]:
    """name -> array of a safetensors, ``.npz`` or ONNX weights file (told apart by their
    first bytes), never unpickling; ModelFileError in one line otherwise."""
    return _read(Path(path))[1]


def _read(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """(kind, arrays) of the weights file at ``path``: kind is npz, safetensors or onnx."""
    _check_file(path)
    with open(path, "rb") as f:
        head = f.read(16)
    kind = _kind(path, head)
    if kind == "safetensors":
        return kind, _read_safetensors(path)
    if kind == "onnx":
        return kind, _read_onnx(path)
    try:
        with zipfile.ZipFile(path) as zf:
            pickled = [n for n in zf.namelist() if n.endswith(".pkl")]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz file (truncated or corrupted: "
                             f"{exc})") from None
    if pickled:
        raise ModelFileError(f"{path}: a torch.save archive ({pickled[0]} is a pickle); "
                             f"{_NO_PICKLE}")
    return kind, read_npz(path, "weights file", ".npz weights file")


# -- matching names and layouts ----------------------------------------------------------------
def _names(names) -> str:
    names = list(names)
    shown = ", ".join(names[:_SHOW])
    return shown + (f" and {len(names) - _SHOW} more" if len(names) > _SHOW else "")


def _strip_prefix(arrays: dict, expected: set) -> dict:
    """``arrays`` with a prefix common to every name dropped (``module.`` from
    DataParallel, ``net.`` from a model that keeps its layers in ``self.net``) when that
    makes the names bareprop's."""
    if not arrays or set(arrays) & expected:
        return arrays
    first = next(iter(arrays))
    for cut in [i + 1 for i, ch in enumerate(first) if ch == "."]:
        prefix = first[:cut]
        if all(k.startswith(prefix) for k in arrays) and \
                {k[cut:] for k in arrays} & expected:
            return {k[cut:]: v for k, v in arrays.items()}
    return arrays


def from_torch(model: core.Module, arrays: dict, source,
               constants: bool = False) -> dict[str, np.ndarray]:
    """A state dict for ``model`` from arrays named as the PyTorch twin's state_dict
    (``constants``: the arrays are a graph's initializers, where other names are the
    graph's own constants, not extra weights)."""
    expected = dict(torch_state_dict(model))
    torch_only = _torch_only(model)          # PyTorch's own counters: optional, ignored
    if constants:
        arrays = {k: v for k, v in arrays.items() if k in expected}
    arrays = _strip_prefix(arrays, set(expected))
    missing = [k for k in expected if k not in arrays and k not in torch_only]
    extra = [k for k in arrays if k not in expected]
    if missing or extra:
        parts = ([f"missing {_names(missing)}"] if missing else []) + \
            ([f"unexpected {_names(extra)}"] if extra else [])
        raise ModelFileError(f"{source}: its weights do not fit this architecture "
                             f"({'; '.join(parts)}); export them from the same architecture")
    return {k: v for k, v in arrays.items() if k not in torch_only}


def from_keras(model: core.Module, arrays: dict, source) -> dict[str, np.ndarray]:
    """A state dict for ``model`` from ``np.savez(path, *keras_model.get_weights())``: each
    layer with a Keras twin takes its arrays in state-dict order (keras_layout.py)."""
    order = [f"arr_{i}" for i in range(len(arrays))]
    if set(order) != set(arrays):
        odd = sorted(set(arrays) - set(order))
        raise ModelFileError(f"{source}: Keras weights must be named arr_0 .. "
                             f"arr_{len(order) - 1}, as np.savez(path, *model.get_weights()) "
                             f"names them; got {_names(odd)}")
    perms = keras_layout.flatten_orders(model)
    layers = []     # (prefix, {name: array}, layer) of every layer with arrays, in order
    for step in core.walk(model):
        own = step.layer.state_dict()
        if not own:
            continue
        entry = core.info(step.layer)
        if entry is None or entry.keras is None:
            raise ModelFileError(f"{source}: layer {step.where} ({type(step.layer).__name__}) "
                                 "has no Keras weight order; use the torch layout")
        layers.append((step.where, own, step.layer))
    n_slots = sum(len(keras_layout.keras_shapes(layer)) for _, _, layer in layers)
    if len(order) != n_slots:
        raise ModelFileError(f"{source}: {len(order)} Keras arrays but this architecture has "
                             f"{n_slots} (kernels, biases, BatchNorm's 4 each); export "
                             "them from the same architecture")
    state, first = {}, 0
    for where, own, layer in layers:
        shapes = keras_layout.keras_shapes(layer)
        keys = order[first:first + len(shapes)]
        if len(shapes) != len(own):     # a recurrent layer: checked in Keras' own layout
            for i, (key, want) in enumerate(zip(keys, shapes), start=first):
                if np.shape(arrays[key]) != want:
                    raise ModelFileError(
                        f"{source}: arr_{i} (Keras weight {i}) should be of shape {want} for "
                        f"layer {where} ({type(layer).__name__}), got "
                        f"{tuple(np.shape(arrays[key]))}; export from the same architecture")
        got = keras_layout.from_keras_arrays(layer, [np.asarray(arrays[k]) for k in keys])
        for name, value in keras_layout.reorder(got, perms.get(where)).items():
            full, want = f"{where}.{name}", own[name].shape
            if value.shape != want:
                i = first + list(own).index(name)
                raise ModelFileError(f"{source}: arr_{i} (Keras weight {i}) should be "
                                     f"{full} of shape {want}, got {tuple(value.shape)} in "
                                     "bareprop's layout; export from the same architecture")
            state[full] = value
        first += len(shapes)
    return state


def load_state_dict_from(model: core.Module, path, layout: str = "auto") -> core.Module:
    """Read the weights file at ``path`` (safetensors or ``.npz``) into ``model``, in place,
    and return it. ``layout``: "torch" (names of the PyTorch twin's state_dict), "keras"
    (``arr_i`` in get_weights order) or "auto" (keras when every name is ``arr_i``).
    The model is unchanged when anything is refused (ModelFileError, one line).

    >>> bp.load_state_dict_from(model, "lenet.safetensors")   # doctest: +SKIP
    """
    if layout not in LAYOUTS:
        from ..errors import unknown_name

        raise unknown_name("weights layout", layout, LAYOUTS)
    kind, arrays = _read(Path(path))
    if not arrays:
        raise ModelFileError(f"{path}: holds no arrays, so no weights to load")
    if layout == "auto":
        keras = kind != "onnx" and all(_KERAS_KEY.fullmatch(k) for k in arrays)
        layout = "keras" if keras else "torch"
    if layout == "keras":
        state = from_keras(model, arrays, path)
    else:
        state = from_torch(model, arrays, path, constants=kind == "onnx")
    own = model.state_dict()
    for name, value in state.items():
        if value.dtype.type not in _FLOATS:
            raise ModelFileError(f"{path}: {name} holds {value.dtype} values; weights must "
                                 "be floating point (float16, float32 or float64)")
        if value.shape != own[name].shape:
            raise ModelFileError(f"{path}: {name} has shape {tuple(value.shape)} but this "
                                 f"architecture's is {own[name].shape}; export the weights "
                                 "from the same architecture")
        if not np.all(np.isfinite(value)):
            raise ModelFileError(f"{path}: {name} holds NaN or infinite values (a diverged "
                                 "model?); export a finite one")
    model.load_state_dict(state)
    return model
