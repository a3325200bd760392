"""Every explanation equals Captum's on the model's PyTorch twin, in float64: an MLP, the
``lenet5`` and the ``cnn`` preset's model (batch norm and dropout in eval), each trained
a few steps on real MNIST, for real test images and several targets."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.reference.torch_twin import torch_module

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
interop_models = pytest.importorskip("interop_models")
if interop_models.DATA is None:
    pytest.skip("needs the real MNIST files (BAREPROP_DATA_DIR)", allow_module_level=True)

MODELS = ("default", "lenet5", "cnn")
N = 6
TOL = 1e-10


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    predictor = interop_models.trained(request.param, "float64")
    model = predictor.model
    model.eval()
    x = predictor.prepare(interop_models.real_test_images(N))      # (N, *input_shape)
    if any(isinstance(m, bp.MaxPool2d) for m in model.modules()):
        # A constant background through a conv gives max-pool windows whose values are
        # equal in exact arithmetic; each framework's rounding then picks the winning tap
        # (both are valid subgradients, routed to different pixels). A little noise gives
        # every window one maximum, so the comparison is of the methods, not of ties.
        x = x + np.random.default_rng(1).normal(0, 1e-3, x.shape)
    twin = torch_module(model).double().eval()
    for m in twin.modules():
        # bareprop's in-place ReLU saves memory; in torch an in-place ReLU overwrites the
        # output a Captum layer hook holds (Grad-CAM at a batch norm would see its ReLU)
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    return request.param, model, twin, x


def _targets(model, x):
    """The predicted class (None), one class for all, and a different class per example."""
    return [None, 3, np.arange(len(x)) % 10]


def _t(target, model, x):
    if target is None:
        return torch.as_tensor(np.argmax(model(x), axis=1))
    return torch.as_tensor(np.broadcast_to(target, (len(x),)).copy())


def test_saliency_and_input_x_gradient(case):
    name, model, twin, x = case
    xt = torch.as_tensor(x)
    for target in _targets(model, x):
        tt = _t(target, model, x)
        for absolute in (True, False):
            want = captum_attr.Saliency(twin).attribute(xt, target=tt, abs=absolute)
            got = bp.explain.saliency(model, x, target=target, abs=absolute)
            assert rel(got, want.detach().numpy()) < TOL, (name, target, absolute)
        want = captum_attr.InputXGradient(twin).attribute(xt, target=tt)
        assert rel(bp.explain.input_x_gradient(model, x, target), want.detach().numpy()) < TOL


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle",
                                    "riemann_trapezoid"])
def test_integrated_gradients(case, method):
    name, model, twin, x = case
    xt = torch.as_tensor(x)
    rng = np.random.default_rng(0)
    baselines = [None, rng.normal(size=x.shape) * 0.1]
    for target, baseline, steps in ((None, baselines[0], 50), (7, baselines[1], 13)):
        tt = _t(target, model, x)
        bt = torch.zeros_like(xt) if baseline is None else torch.as_tensor(baseline)
        want, want_delta = captum_attr.IntegratedGradients(twin).attribute(
            xt, baselines=bt, target=tt, n_steps=steps, method=method,
            return_convergence_delta=True)
        got, delta = bp.explain.integrated_gradients(model, x, target, baseline, steps, method,
                                                     return_convergence_delta=True)
        assert rel(got, want.detach().numpy()) < TOL, (name, method, target)
        np.testing.assert_allclose(delta, want_delta.detach().numpy(),
                                   atol=TOL * np.abs(got).sum(axis=tuple(range(1, x.ndim))).max())


def test_gradcam_at_every_spatial_layer(case):
    name, model, twin, x = case
    shapes = [s.out_shape for s in bp.walk(model, nested=False)]
    spatial = [i for i, s in enumerate(shapes) if len(s) == 3]
    if not spatial:
        with pytest.raises(bp.ConfigError, match="no layer with an"):
            bp.explain.gradcam(model, x)
        return
    xt = torch.as_tensor(x)
    for k in spatial:
        for target, relu in ((None, True), (5, False)):
            tt = _t(target, model, x)
            want = captum_attr.LayerGradCam(twin, twin[k]).attribute(
                xt, target=tt, relu_attributions=relu).detach().numpy()
            got = bp.explain.gradcam(model, x, target, layer=k, relu=relu)
            assert got.shape == want.shape
            assert rel(got, want) < TOL, (name, k, target, relu)
            up = captum_attr.LayerAttribution.interpolate(torch.as_tensor(got), (28, 28),
                                                          interpolate_mode="bilinear")
            assert rel(bp.explain.upsample(got, (28, 28)), up.numpy()) < TOL
    # the default layer is the last spatial one, and a module of the model names it too
    np.testing.assert_array_equal(bp.explain.gradcam(model, x),
                                  bp.explain.gradcam(model, x, layer=model.layers[spatial[-1]]))


def test_occlusion(case):
    name, model, twin, x = case
    xt = torch.as_tensor(x)
    windows = {2: [((16,), (8,)), ((50,), (30,))],                 # flat (N, 784)
               3: [((4, 4), (2, 2)), ((5, 3), (3, 3))],             # (N, 28, 28)
               4: [((1, 4, 4), (1, 2, 2)), ((1, 5, 3), (1, 3, 3))]}[x.ndim]
    for (window, stride), target, baseline in zip(windows, (None, 2), (0, 0.5)):
        tt = _t(target, model, x)
        want = captum_attr.Occlusion(twin).attribute(
            xt, sliding_window_shapes=window, strides=stride, target=tt, baselines=baseline)
        got = bp.explain.occlusion(model, x, target, window, stride, baseline)
        assert got.dtype == np.float64
        # Captum returns float32 (format_result casts); ours rounded to float32 is its
        np.testing.assert_allclose(got.astype(np.float32), want.numpy(), rtol=0,
                                   atol=4 * np.finfo(np.float32).eps * float(np.abs(got).max()))


def test_fgsm(case):
    name, model, twin, x = case
    y = np.arange(len(x)) % 10
    lo, hi = float(x.min()), float(x.max())
    from captum.robust import FGSM

    loss = torch.nn.CrossEntropyLoss(reduction="none")
    want = FGSM(twin, loss, lower_bound=lo, upper_bound=hi).perturb(
        torch.as_tensor(x), epsilon=0.3, target=torch.as_tensor(y))
    got = bp.explain.fgsm(model, x, y, 0.3, bounds=(lo, hi))
    assert rel(got, want.detach().numpy()) < TOL
