"""The explanations' own properties, without Captum: saliency is the gradient (central
differences), integrated gradients are complete, Grad-CAM of one conv is its formula,
Captum's integration points are reproduced bit for bit, the model is left as found,
every layer kind is explainable, and bad arguments are one-line errors."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.explain.gradients import riemann


def small_cnn(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    model = bp.Sequential(bp.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=dtype), bp.BatchNorm2d(4, dtype=dtype),
                          bp.ReLU(), bp.MaxPool2d(2), bp.Dropout(0.3), bp.Flatten(),
                          bp.Linear(4 * 4 * 4, 5, rng=rng, dtype=dtype), input_shape=(1, 8, 8))
    model.train()
    model(rng.normal(size=(16, 1, 8, 8)).astype(dtype))      # running statistics move
    return model


def logit(model, x, t):
    model.eval()
    return model(x)[np.arange(len(x)), t]


def test_saliency_is_the_gradient_by_central_differences():
    model = small_cnn()
    x = np.random.default_rng(1).normal(size=(3, 1, 8, 8))
    t = np.array([0, 3, 4])
    g = bp.explain.saliency(model, x, target=t, abs=False)
    h = 1e-6
    for idx in [(0, 0, 0, 0), (1, 0, 3, 5), (2, 0, 7, 7), (0, 0, 4, 2)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fd = (logit(model, xp, t) - logit(model, xm, t))[idx[0]] / (2 * h)
        assert abs(fd - g[idx]) < 1e-6 * max(1.0, abs(fd)), idx
    np.testing.assert_array_equal(bp.explain.saliency(model, x, t), np.abs(g))


def smooth_cnn(seed=0):
    """tanh and average pooling: a path integral without kinks."""
    rng = np.random.default_rng(seed)
    return bp.Sequential(bp.Conv2d(1, 4, 3, padding=1, rng=rng, dtype="float64"), bp.Tanh(),
                         bp.AvgPool2d(2), bp.Flatten(),
                         bp.Linear(4 * 4 * 4, 5, rng=rng, dtype="float64"), input_shape=(1, 8, 8))


@pytest.mark.parametrize("method,share", [("riemann_middle", 1.0), ("riemann_trapezoid", 63 / 64)])
def test_integrated_gradients_are_complete_at_64_steps(method, share):
    """sum_i IG_i = f(x) - f(b) within 1%. Captum's trapezoid weights (1/n, halved at the
    two ends) sum to (n - 1)/n, not 1, so its sum is (n - 1)/n of the gap: followed here
    (equality with Captum), and said in docs/explain.md."""
    model = smooth_cnn()
    x = np.random.default_rng(2).normal(size=(4, 1, 8, 8))
    attr, delta = bp.explain.integrated_gradients(model, x, target=2, steps=64, method=method,
                                                  return_convergence_delta=True)
    gap = logit(model, x, np.full(4, 2)) - logit(model, np.zeros_like(x), np.full(4, 2))
    sums = attr.reshape(4, -1).sum(axis=1)
    np.testing.assert_allclose(sums - gap, delta, atol=1e-12)
    assert np.all(np.abs(sums - share * gap) <= 0.01 * np.abs(gap)), (sums, gap)


def test_gradcam_of_one_conv_is_its_formula():
    rng = np.random.default_rng(3)
    conv = bp.Conv2d(1, 3, 3, rng=rng, dtype="float64")
    head = bp.Linear(3 * 4 * 4, 2, rng=rng, dtype="float64")
    model = bp.Sequential(conv, bp.Flatten(), head, input_shape=(1, 6, 6))
    x = rng.normal(size=(2, 1, 6, 6))
    a = conv(x)                                                       # (2, 3, 4, 4)
    # logit_t = W_t . vec(A) + b: d logit_t / dA = W_t reshaped; alpha_c = its mean
    w = head.weight.data.reshape(2, 3, 4, 4)
    for t in (0, 1):
        alpha = w[t].mean(axis=(1, 2))                                # (3,)
        want = np.maximum(np.einsum("c,nchw->nhw", alpha, a), 0)[:, None]
        np.testing.assert_allclose(bp.explain.gradcam(model, x, target=t, layer=0), want,
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle",
                                    "riemann_trapezoid"])
def test_the_integration_points_are_captums_bit_for_bit(method):
    approx = pytest.importorskip("captum.attr._utils.approximation_methods")
    sizes_of, alphas_of = approx.approximation_parameters(method)
    import torch

    for n in (2, 3, 7, 13, 50, 64, 199, 300):
        sizes, alphas = riemann(method, n)
        np.testing.assert_array_equal(alphas, np.array(alphas_of(n)))
        np.testing.assert_array_equal(sizes, torch.tensor(sizes_of(n)).float().double().numpy())


def _snapshot(model):
    return ([p.data.copy() for p in model.parameters()], [p.grad for p in model.parameters()],
            [m.training for m in model.modules()],
            {k: v.copy() for k, v in model.state_dict().items()})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("training", [True, False])
def test_the_model_is_left_as_found(dtype, training):
    model = small_cnn(dtype)
    rng = np.random.default_rng(4)
    grads = [rng.normal(size=p.shape).astype(dtype) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    model.train(training)
    before = _snapshot(model)
    copies = [g.copy() for g in grads]
    x = rng.normal(size=(2, 1, 8, 8)).astype(dtype)
    outs = [bp.explain.saliency(model, x), bp.explain.input_x_gradient(model, x, 1),
            bp.explain.integrated_gradients(model, x, steps=5), bp.explain.gradcam(model, x),
            bp.explain.occlusion(model, x, window=(1, 3, 3), stride=(1, 2, 2)),
            bp.explain.fgsm(model, x, [0, 1], 0.1, bounds=None),
            bp.explain.class_visualization(model, 2, steps=3, jitter=1)]
    for o in outs:
        assert o.dtype == np.dtype(dtype) and np.all(np.isfinite(o))
    after = _snapshot(model)
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    for g, copy, now in zip(grads, copies, after[1]):
        assert now is g                                      # the same array, untouched
        np.testing.assert_array_equal(g, copy)
    assert before[2] == after[2]
    for k in before[3]:
        np.testing.assert_array_equal(before[3][k], after[3][k])
    assert not any(m.__dict__.get("keep_for_backward") for m in model.modules())


def test_class_visualization_is_seeded_and_raises_its_class():
    model = small_cnn()
    a = bp.explain.class_visualization(model, 3, steps=30, lr=0.5, jitter=1, seed=7)
    b = bp.explain.class_visualization(model, 3, steps=30, lr=0.5, jitter=1, seed=7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 1, 8, 8)
    model.eval()
    assert model(a)[0, 3] > model(np.zeros_like(a))[0, 3]


def test_fgsm_moves_no_input_by_more_than_eps_and_stays_in_bounds():
    model = small_cnn()
    x = np.random.default_rng(5).uniform(0, 1, size=(6, 1, 8, 8))
    adv = bp.explain.fgsm(model, x, np.arange(6) % 5, 0.05)
    assert np.max(np.abs(adv - x)) <= 0.05 + 1e-15
    assert adv.min() >= 0 and adv.max() <= 1
    assert np.any(adv != x)


@pytest.mark.parametrize("arch", ["rows lstm(8) linear(3)", "rows gru(6,bidirectional=true) linear(3)",
                                  "patches(7,8) posembed transformer(heads=2,ff=16) meanpool "
                                  "layernorm linear(3)"])
def test_recurrent_and_attention_models_are_explained_by_their_gradient(arch):
    from bareprop.experiment.arch import build

    model = build(arch, (1, 14, 14), n_classes=3, seed=0, dtype="float64")
    x = np.random.default_rng(6).normal(size=(2, 1, 14, 14))
    g = bp.explain.saliency(model, x, target=1, abs=False)
    h = 1e-6
    for idx in [(0, 0, 3, 4), (1, 0, 13, 0)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fd = (logit(model, xp, np.ones(2, int)) - logit(model, xm, np.ones(2, int)))[idx[0]]
        assert abs(fd / (2 * h) - g[idx]) < 1e-6, (arch, idx)


@pytest.mark.parametrize("call,fragment", [
    (lambda m, x: bp.explain.saliency(m, x, target=5), "target class 5 is outside"),
    (lambda m, x: bp.explain.integrated_gradients(m, x, steps=1), "steps must be an integer of at least 2"),
    (lambda m, x: bp.explain.integrated_gradients(m, x, method="gausslegendre"), "unknown integration method"),
    (lambda m, x: bp.explain.occlusion(m, x, window=(1, 9, 9)), "larger than an example"),
    (lambda m, x: bp.explain.occlusion(m, x, window=(3, 3)), "must be 3 positive integers"),
    (lambda m, x: bp.explain.fgsm(m, x, [0, 0], -0.1), "eps must be a finite number >= 0"),
    (lambda m, x: bp.explain.gradcam(m, x, layer=5), "gives (64,) per example"),
    (lambda m, x: bp.explain.gradcam(m, x, layer=9), "not one of the model's 7 layers"),
    (lambda m, x: bp.explain.saliency(m, x[:, :, :4]), "but the model takes"),
])
def test_bad_arguments_are_one_line_config_errors(call, fragment):
    model = small_cnn()
    x = np.zeros((2, 1, 8, 8))
    with pytest.raises(bp.ConfigError) as err:
        call(model, x)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_batches_are_taken_in_chunks_with_the_same_answers(monkeypatch):
    """Any batch is explained a few examples at a time (memory bounded); the chunking
    changes no number."""
    import importlib

    # the package's functions shadow their modules' names: import the modules themselves
    gradients, occlusion, probe = (importlib.import_module(f"bareprop.explain.{m}") for m in
                                   ("gradients", "occlusion", "probe"))

    model = small_cnn()
    x = np.random.default_rng(8).normal(size=(7, 1, 8, 8))
    calls = {
        "saliency": lambda: bp.explain.saliency(model, x, abs=False),
        "ig": lambda: bp.explain.integrated_gradients(model, x, steps=4),
        "gradcam": lambda: bp.explain.gradcam(model, x, relu=False),
        "occlusion": lambda: bp.explain.occlusion(model, x, window=(1, 3, 3), stride=(1, 2, 2)),
        "fgsm": lambda: bp.explain.fgsm(model, x, np.arange(7) % 5, 0.1, bounds=None),
    }
    whole = {k: f() for k, f in calls.items()}
    sizes = []
    real = probe.forward

    def spy(m, xb, keep=None):
        sizes.append(len(xb))
        return real(m, xb, keep)
    for mod in (probe, gradients, occlusion):
        monkeypatch.setattr(mod, "forward", spy)
    monkeypatch.setattr(probe, "CHUNK", 3)
    monkeypatch.setattr(gradients, "CHUNK", 3)
    monkeypatch.setattr(occlusion, "CHUNK", 3)
    for k, f in calls.items():
        sizes.clear()
        np.testing.assert_allclose(f(), whole[k], rtol=1e-12, atol=1e-14, err_msg=k)
        assert max(sizes) <= 4, (k, max(sizes))          # IG: 4 steps of one example


def test_a_layer_used_twice_and_mixed_modes_are_left_as_found():
    rng = np.random.default_rng(9)
    shared = bp.Linear(6, 6, rng=rng, dtype="float64")
    norm = bp.BatchNorm1d(6, dtype="float64")
    model = bp.Sequential(shared, bp.ReLU(), norm, shared, bp.Linear(6, 3, rng=rng,
                                                                   dtype="float64"),
                          input_shape=(6,))
    model.train()
    norm.eval()                                        # frozen inside a training model
    g = bp.explain.saliency(model, rng.normal(size=(4, 6)))
    assert g.shape == (4, 6) and np.all(np.isfinite(g))
    assert model.training and shared.training and not norm.training
    assert "keep_for_backward" not in shared.__dict__
