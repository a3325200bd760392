"""The web app's look inside sequence models, through the JSON API: a (T, E) output is a
"sequence" (neither a conv nor a dense output), predict sends each recurrent layer's state
at every step and each attention head's map on the patch grid, equal to what the model
computes, within the module's bounds, and as u8 bytes that decode to the same numbers."""
from __future__ import annotations

import base64

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from bareprop.inference import Predictor  # noqa: E402
from bareprop.preprocess import load_grey, to_mnist  # noqa: E402
from bareprop.web import infer  # noqa: E402
from bareprop.web.app import create_app  # noqa: E402
from synthetic import write_dataset  # noqa: E402
from webruns import AUTH, BASE, TOKEN, digit_png, train  # noqa: E402

ARCHS = {
    "lstm": "rows lstm(16) linear(10)",
    "bigru": "cols gru(6,bidirectional=true,sequences=true) lstm(8) linear(10)",
    "vit": "patches(7,16) clstoken posembed transformer(heads=2,ff=32) firsttoken linear(10)",
    "vitmean": "patches(7,16) posembed transformer(heads=2,ff=32) transformer(heads=4,ff=32) "
               "meanpool layernorm linear(10)",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("webseq")
    data = root / "data"
    write_dataset(data / "mnist", n_train=300, n_test=100)
    for name, arch in ARCHS.items():
        train(root / "runs", name, data, "--arch", arch, "--batch-size", "100")
    return root / "runs", data


@pytest.fixture(scope="module")
def client(runs):
    app = create_app(runs[0], TOKEN, port=8765, data_dir=str(runs[1]), verify=False)
    with TestClient(app, base_url=BASE) as c:
        yield c


def predict(client, run: str, compact: bool = False, kind: str = "zero") -> dict:
    r = client.post(f"/api/runs/{run}/predict" + ("?maps=u8" if compact else ""),
                    content=digit_png(kind), headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    return r.json()


def picture(p: dict) -> np.ndarray:
    """A picture's numbers, from its floats or its u8 bytes, in its ``shown`` shape."""
    if "values" in p:
        a = np.array(p["values"], np.float64)
    else:
        q = np.frombuffer(base64.b64decode(p["u8"]), np.uint8).astype(np.float64)
        a = p["min"] + q * (p["max"] - p["min"]) / 255
    assert list(a.shape) == p["shown"] or a.size == np.prod(p["shown"])
    return a.reshape(p["shown"])


def look_inside(runs, run: str):
    """([(name, (T, U))], [(name, (heads, 4, 4), how)]) of the run's model after a forward of
    the same drawing, read here off the layers themselves: each recurrent layer's output
    at every step, and each attention layer's weights (the class token's row, or the
    mean over the queries) on the 4x4 patch grid."""
    import io

    f = io.BytesIO(digit_png("zero"))
    f.name = "d.png"
    pred = Predictor.from_file(runs[0] / run)
    pred.activations(to_mnist(load_grey(f))[None])
    states, maps = [], []
    for i, layer in enumerate(pred.model.layers):
        if hasattr(layer, "hidden_states"):
            states.append((f"{i} {layer.short_name()}", layer.hidden_states()[0]))
        attn = getattr(layer, "self_attn", None)
        if attn is not None:
            p = attn.attention_weights[0]                                # (heads, T, T)
            m, how = (p[:, 0, 1:], "from the class token") if p.shape[-1] == 17 else \
                (p.mean(axis=1), "received, mean over tokens")
            maps.append((f"{i} {layer.short_name()}", m.reshape(len(p), 4, 4), how))
    return states, maps


def test_the_model_description_names_sequence_outputs_and_the_kind(client):
    lstm = client.get("/api/runs/lstm/model", headers=AUTH).json()
    assert lstm["kind"] == "rnn"
    assert [(x["type"], x["kind"], x["output_shape"]) for x in lstm["layers"]] == [
        ("Rows", "sequence", [28, 28]), ("LSTM", "dense", [16]), ("Linear", "dense", [10])]
    vit = client.get("/api/runs/vit/model", headers=AUTH).json()
    assert vit["kind"] == "transformer"
    assert [x["kind"] for x in vit["layers"]] == ["sequence"] * 4 + ["dense"] * 2
    assert vit["layers"][1]["output_shape"] == [17, 16]                  # the class token too
    assert vit["first_layer"]["type"] == "conv"                          # the patch filters


def test_a_token_sequence_is_drawn_as_a_sequence(client):
    got = predict(client, "vit")
    acts = {a["name"]: a for a in got["activations"]}
    seq = acts["TransformerEncoderLayer(16, 2)"]
    assert seq["type"] == "sequence" and seq["shape"] == [17, 16] == seq["shown"]
    assert np.array(seq["values"]).shape == (17, 16)
    # rounded to 4 significant digits of the largest value
    assert np.min(seq["values"]) == pytest.approx(seq["min"], abs=1e-3)
    assert np.max(seq["values"]) == pytest.approx(seq["max"], abs=1e-3)
    assert acts["FirstToken"]["type"] == "dense" and got["activations"][-1]["type"] == "dense"


def test_the_hidden_state_of_each_step_is_the_models(client, runs):
    got = predict(client, "lstm")
    assert got["attention"] is None
    [state] = got["hidden_states"]
    assert {k: state[k] for k in ("layer", "name", "shape", "shown", "directions", "along")} == {
        "layer": 1, "name": "LSTM(28, 16)", "shape": [28, 16], "shown": [28, 16],
        "directions": 1, "along": "rows"}
    h = picture(state)
    [(_, want)], _ = look_inside(runs, "lstm")
    np.testing.assert_allclose(h, want, atol=1e-3 * np.abs(want).max())
    # the state after the last step is what the LSTM passes on: its activation
    lstm = next(a for a in got["activations"] if a["name"] == "LSTM(28, 16)")
    np.testing.assert_allclose(h[-1], lstm["values"], atol=1e-3 * np.abs(want).max())
    assert state["min"] == pytest.approx(want.min(), abs=1e-6)


def test_a_bidirectional_layer_and_columns(client, runs):
    full, small = predict(client, "bigru"), predict(client, "bigru", compact=True)
    assert [(s["name"], s["shape"], s["directions"], s["along"]) for s in full["hidden_states"]] \
        == [("GRU(28, 6)", [28, 12], 2, "columns"), ("LSTM(12, 8)", [28, 8], 1, "columns")]
    want, _ = look_inside(runs, "bigru")
    for a, b, (_, h) in zip(full["hidden_states"], small["hidden_states"], want):
        assert "values" not in b and b["shown"] == a["shown"]
        span = b["max"] - b["min"]
        np.testing.assert_allclose(picture(b), h, atol=span / 500 + 1e-6)   # u8: within 1/510
        np.testing.assert_allclose(picture(a), h, atol=1e-3 * np.abs(h).max())
    # the sequence the bidirectional layer hands on is drawn as one too
    assert [a["type"] for a in small["activations"]] == ["sequence", "dense", "dense"]
    assert len(base64.b64decode(small["activations"][0]["u8"])) == 28 * 12


def test_the_attention_from_the_class_token(client, runs):
    got = predict(client, "vit")
    assert got["hidden_states"] == []
    att = got["attention"]
    assert att["grid"] == [4, 4]
    [m] = att["maps"]
    assert (m["layer"], m["name"], m["how"], m["heads"], m["shown"]) == (
        3, "TransformerEncoderLayer(16, 2)", "from the class token", 2, [2, 4, 4])
    a = picture(m)
    _, [(_, want, how)] = look_inside(runs, "vit")
    assert how == m["how"]
    np.testing.assert_allclose(a, want, atol=1e-4)
    # the class token's weights over the patches: what it keeps for itself is missing
    assert np.all(a >= 0) and np.all(a.sum(axis=(1, 2)) <= 1 + 1e-3)


def test_the_attention_received_on_average(client, runs):
    att = predict(client, "vitmean", compact=True)["attention"]
    assert [(m["layer"], m["how"], m["heads"], m["shown"]) for m in att["maps"]] == [
        (2, "received, mean over tokens", 2, [2, 4, 4]),
        (3, "received, mean over tokens", 4, [4, 4, 4])]
    _, want = look_inside(runs, "vitmean")
    for m, (_, w, _) in zip(att["maps"], want):
        a = picture(m)
        np.testing.assert_allclose(a, w, atol=(m["max"] - m["min"]) / 500 + 1e-6)
        # every query's weights sum to 1: their mean over the queries does too
        np.testing.assert_allclose(a.sum(axis=(1, 2)), 1, atol=16 * m["max"] / 500)


def test_the_pictures_keep_to_their_bounds(client, monkeypatch):
    monkeypatch.setattr(infer, "MAX_STEPS", 5)
    monkeypatch.setattr(infer, "MAX_FEATURES", 3)
    monkeypatch.setattr(infer, "MAX_HEADS", 1)
    monkeypatch.setattr(infer, "MAX_LOOK_LAYERS", 1)
    rnn = predict(client, "bigru")
    [state] = rnn["hidden_states"]
    assert state["shape"] == [28, 12] and state["shown"] == [5, 3]
    assert np.shape(state["values"]) == (5, 3)
    seq = rnn["activations"][0]
    assert seq["shape"] == [28, 12] and np.shape(seq["values"]) == (5, 3)
    vit = predict(client, "vitmean", compact=True)["attention"]
    [m] = vit["maps"]
    assert m["heads"] == 2 and m["shown"] == [1, 4, 4]
    assert len(base64.b64decode(m["u8"])) == 16
    monkeypatch.setattr(infer, "MAX_GRID_CELLS", 15)                # a 4x4 grid is too many
    assert predict(client, "vit")["attention"] is None
