"""A 2-2-2 ReLU network worked out by hand, every number written down.

    x = [1, 2], y = 0
    W1 = [[1, 1], [2, -1]], b1 = [0, -3]  ->  z1 = [3, -3 + 0] ... see below
    z1 = W1 x + b1 = [1 + 2 + 0, 2 - 2 - 3] = [3, -3];  a1 = relu(z1) = [3, 0]
    W2 = [[2, -1], [1, 2]], b2 = [0, 0]   ->  z2 = W2 a1 = [6, 3]
    p = softmax(z2) = [1 - s, s] with s = 1 / (1 + e^3) = sigmoid(-3)
    L = -log(1 - s) = log(1 + e^-3)
    dz2 = p - onehot(0) = [-s, s]
    dW2 = dz2^T a1 = [[-3s, 0], [3s, 0]];  db2 = [-s, s]
    da1 = W2^T dz2 = [-2s + s, s + 2s] = [-s, 3s];  dz1 = da1 * [z1 > 0] = [-s, 0]
    dW1 = dz1^T x = [[-s, -2s], [0, 0]];  db1 = [-s, 0]
"""
import math

import numpy as np

import bareprop as bp

S = 1.0 / (1.0 + math.exp(3.0))  # 0.04742587317756678


def tiny_net():
    net = bp.Sequential(bp.Linear(2, 2, dtype=np.float64), bp.ReLU(),
                        bp.Linear(2, 2, dtype=np.float64))
    net[0].weight.data[...] = [[1, 1], [2, -1]]
    net[0].bias.data[...] = [0, -3]
    net[2].weight.data[...] = [[2, -1], [1, 2]]
    net[2].bias.data[...] = [0, 0]
    return net


def test_forward_and_backward_by_hand():
    net = tiny_net()
    loss_fn = bp.CrossEntropyLoss()
    x, y = np.array([[1.0, 2.0]]), np.array([0])
    logits = net(x)
    np.testing.assert_allclose(logits, [[6.0, 3.0]], rtol=0, atol=1e-15)
    loss = loss_fn(logits, y)
    assert abs(S - 0.04742587317756678) < 1e-17
    assert abs(loss - math.log(1 + math.exp(-3))) < 1e-15
    assert abs(loss - 0.04858735157374206) < 1e-15
    net.backward(loss_fn.backward())
    w1, b1, w2, b2 = (p.grad for p in net.parameters())
    np.testing.assert_allclose(w2, [[-3 * S, 0], [3 * S, 0]], rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(b2, [-S, S], rtol=1e-14)
    np.testing.assert_allclose(w1, [[-S, -2 * S], [0, 0]], rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(b1, [-S, 0], rtol=1e-14, atol=1e-17)


def test_one_sgd_step_by_hand():
    net = tiny_net()
    loss_fn = bp.CrossEntropyLoss()
    opt = bp.SGD(net.parameters(), lr=0.5)
    loss_fn(net(np.array([[1.0, 2.0]])), np.array([0]))
    net.backward(loss_fn.backward())
    opt.step()
    np.testing.assert_allclose(net[0].weight.data, [[1 + 0.5 * S, 1 + S], [2, -1]], rtol=1e-15)
    np.testing.assert_allclose(net[2].bias.data, [0.5 * S, -0.5 * S], rtol=1e-14)


def test_clip_delta_bounds_the_per_example_delta():
    """With clip_delta = c the output delta [-s, s] becomes [-c, c] when c < s."""
    net = tiny_net()
    net.clip_delta = 0.01  # c < s ~ 0.047
    loss_fn = bp.CrossEntropyLoss()
    loss_fn(net(np.array([[1.0, 2.0]])), np.array([0]))
    net.backward(loss_fn.backward())
    c = 0.01
    np.testing.assert_allclose(net[2].weight.grad, [[-3 * c, 0], [3 * c, 0]], rtol=1e-14)
    # da1 = W2^T [-c, c] = [-c, 3c]; hidden delta [-c, 0] is inside the bound
    np.testing.assert_allclose(net[0].weight.grad, [[-c, -2 * c], [0, 0]], rtol=1e-14)


def test_clip_delta_divides_by_batch_size():
    """Duplicating the example in a batch of 4 leaves the mean gradient unchanged."""
    one, four = tiny_net(), tiny_net()
    one.clip_delta = four.clip_delta = 0.01
    loss_fn = bp.CrossEntropyLoss()
    loss_fn(one(np.array([[1.0, 2.0]])), np.array([0]))
    one.backward(loss_fn.backward())
    loss_fn(four(np.tile([[1.0, 2.0]], (4, 1))), np.zeros(4, int))
    four.backward(loss_fn.backward())
    for a, b in zip(one.parameters(), four.parameters()):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-14, atol=1e-18)


def test_silu_by_hand():
    """y = x sigmoid(x), dy/dx = s (1 + x (1 - s)): at x = 0, 1/2; at x = ln 3, s = 3/4,
    y = (3/4) ln 3 and dy/dx = (3/4)(1 + ln 3 / 4); far out, x and 1 (or 0 and 0)."""
    x = np.array([[0.0, np.log(3.0), -np.log(3.0), 40.0, -800.0]])
    silu = bp.SiLU()
    y = silu(x)
    ln3 = np.log(3.0)
    np.testing.assert_allclose(y, [[0.0, 0.75 * ln3, -0.25 * ln3, 40.0, 0.0]], rtol=1e-15,
                               atol=1e-300)
    dx = silu.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, [[0.5, 0.75 * (1 + ln3 / 4), 0.25 * (1 - 0.75 * ln3), 1.0,
                                     0.0]], rtol=1e-15)
