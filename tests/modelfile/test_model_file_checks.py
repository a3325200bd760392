"""What a model file records beside its weights is checked as it is loaded, like the
weights: class names (a list of strings, one per output), layer types this session knows
(a user's own layer must be registered, and imported before loading). Saving refuses
what could not be loaded back."""
import re

import numpy as np
import pytest
from PIL import Image

import bareprop as bp
from bareprop.archive import read_archive, write_archive
from bareprop.errors import ConfigError, ModelFileError

from oneline import cli, refused
from synthetic import write_dataset


def rewrite_meta(path, **changes):
    """The model file at ``path`` with ``changes`` made to its __meta__ (as a hand-edited
    or hostile file would have them)."""
    meta, arrays = read_archive(path, "model.npz", "bareprop-model", (1, 2), "model file")
    for key, value in changes.items():
        if callable(value):
            value(meta)
        else:
            meta[key] = value
    write_archive(path, meta, arrays)
    return path


@pytest.fixture
def model_file(tmp_path):
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0), input_shape=(28, 28))
    return bp.save(model, tmp_path / "m.npz", classes=[str(i) for i in range(10)])


BAD_CLASSES = [
    (5, "classes must be a list of class names (strings), one per output, got int 5"),
    (["0", "1", "2"], "classes has 3 names but the model has 10 outputs"),
    ([str(i) for i in range(11)], "classes has 11 names but the model has 10 outputs"),
    (list(range(10)), "item 0 is 0, not a string"),
    ("0123456789", "got str"),
    ({"0": "zero"}, "got dict"),
]


@pytest.mark.parametrize("classes,fragment", BAD_CLASSES)
def test_bad_class_names_in_a_file_are_refused_as_it_loads(model_file, classes, fragment):
    rewrite_meta(model_file, classes=classes)
    with pytest.raises(ModelFileError) as info:
        bp.load(model_file)
    message = str(info.value)
    assert message.startswith(f"{model_file}: refused as a model file: ") and \
        fragment in message and "\n" not in message, message
    with pytest.raises(ModelFileError, match="refused as a model file"):
        bp.Predictor.from_file(model_file)


def test_a_version_1_files_classes_are_checked_too(model_file):
    def to_v1(meta):
        meta.update(version=1, extra={"classes": 7, "input_shape": [28, 28]})
    rewrite_meta(model_file, v1=to_v1)
    with pytest.raises(ModelFileError, match="got int 7"):
        bp.load(model_file)


@pytest.mark.parametrize("classes,fragment", BAD_CLASSES[:3])
def test_evaluate_and_predict_refuse_bad_class_names_in_one_line(tmp_path, model_file,
                                                                 classes, fragment):
    rewrite_meta(model_file, classes=classes)
    a = np.full((28, 28), 255, np.uint8)
    Image.fromarray(a).save(tmp_path / "one.png")
    refused(cli("predict", model_file, tmp_path / "one.png"), str(model_file), fragment)
    refused(cli("evaluate", model_file, "--data-dir", write_dataset(tmp_path / "d"),
                 "--no-verify"), str(model_file), fragment)


@pytest.mark.parametrize("classes,fragment", BAD_CLASSES)
def test_save_and_predictor_refuse_bad_class_names(tmp_path, classes, fragment):
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0), input_shape=(28, 28))
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        bp.save(model, tmp_path / "m.npz", classes=classes)
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        bp.Predictor(model, classes=classes)


def test_save_counts_the_outputs_for_the_input_shape_it_is_given(tmp_path):
    model = bp.Sequential(bp.Flatten())                  # no shape of its own
    with pytest.raises(ConfigError, match="classes has 1 names but the model has 6 outputs"):
        bp.save(model, tmp_path / "m.npz", input_shape=(2, 3), classes=["a"])
    bp.save(model, tmp_path / "m.npz", input_shape=(2, 3), classes=list("abcdef"))
    assert bp.Predictor.from_file(tmp_path / "m.npz").classes == list("abcdef")


def test_good_class_names_still_round_trip(tmp_path):
    model = bp.Sequential(bp.Linear(4, 3, rng=0))
    for classes in (("a", "b", "c"), np.array(["a", "b", "c"]), None):
        _, meta = bp.load(bp.save(model, tmp_path / "m.npz", classes=classes), with_meta=True)
        assert meta["classes"] == (None if classes is None else ["a", "b", "c"])
    assert bp.Predictor.from_file(tmp_path / "m.npz").classes == ["0", "1", "2"]


class Tripler(bp.Module):
    """A user's layer, never registered: y = 3 x."""

    preserves_shape = True

    def forward(self, x):
        return 3 * x

    def input_grad(self, dout):
        return 3 * dout


def test_saving_an_unregistered_layer_is_refused_naming_the_fix(tmp_path):
    model = bp.Sequential(bp.Linear(4, 3, rng=0), bp.Sequential(bp.ReLU(), Tripler()))
    with pytest.raises(ConfigError) as info:
        bp.save(model, tmp_path / "m.npz")
    assert str(info.value) == (
        "cannot save layer 1.1 (Tripler): its class is not registered, so bp.load could "
        "not rebuild it; decorate the class with @bp.register_layer (and import it before "
        "bp.load)")
    assert not (tmp_path / "m.npz").exists()


def test_loading_an_unknown_layer_type_says_to_register_and_import_it(tmp_path):
    path = bp.save(bp.Sequential(bp.Linear(4, 3, rng=0), bp.ReLU()), tmp_path / "m.npz")

    def rename(meta):
        meta["architecture"]["layers"][1]["type"] = "Tripler"
    rewrite_meta(path, arch=rename)
    with pytest.raises(ModelFileError) as info:
        bp.load(path)
    assert str(info.value) == (
        f"{path}: layer 1: unknown layer type 'Tripler'. If it is a layer of your own, "
        "decorate its class with @bp.register_layer and import the module that defines it "
        "before loading")
    refused(cli("predict", path, tmp_path / "none.png"), "unknown layer type 'Tripler'",
             "@bp.register_layer")


def test_ctrl_c_while_an_archive_is_written_stays_a_ctrl_c(tmp_path, monkeypatch):
    """np.savez closes its zip in a finally: Ctrl-C while an entry's writing handle is
    open makes that close raise ValueError over the KeyboardInterrupt, and a run stopped
    while checkpointing was recorded as failed (bareprop serve's events)."""
    import zipfile

    from bareprop.archive import write_archive

    class Interrupted(zipfile._ZipWriteFile):
        def close(self):                       # the handle is left open, as Ctrl-C does
            raise KeyboardInterrupt

    monkeypatch.setattr(zipfile, "_ZipWriteFile", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_archive(tmp_path / "c.npz", {"epoch": 1}, {"w": np.zeros(3)})
    assert not (tmp_path / "c.npz").exists()
