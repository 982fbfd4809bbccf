"""The shares beyond lag K from one lag-by-lag pass (bptt.diagnosis.window) equal those of the
notebook's window run once per K (numbers.shares_beyond, core.backprop_window), for every
registered cell in a stacked, bidirectional network."""
import numpy as np
import pytest

import bptt
from bptt import validate
from bptt.diagnosis import numbers, window
from bptt.model import model_class
from bptt.stack import Stack, backprop, initial_states, run


def _layer(cell, D, H, seed):
    m = bptt.random_model(cell, H, D, 2, seed=seed)
    return model_class(cell)(**{k: v for k, v in m.params.items() if k not in ("V", "c")}, **m.cell.values, head=None)


@pytest.mark.parametrize("cell", bptt.cells.names())
def test_one_pass_gives_every_window_s_share(cell):
    rng = np.random.default_rng(5)
    a, b = _layer(cell, 3, 4, 1), _layer(cell, 3, 4, 2)
    top = _layer(cell, 2 * a.cell.out(4), 4, 3)
    stack = Stack([(a, b), top], np.eye(top.cell.out(4)), head="mse")
    N, T = 3, 17
    x = rng.normal(size=(N, T, 3))
    xin = validate.Inputs(None, x, N, T, True)
    trace = run(stack, xin, initial_states(stack, None, xin))
    errors, _ = backprop(trace, rng.normal(size=(T, N, top.cell.out(4))), None, states=True)
    lags = (1, 4, 16, 40)
    for k, pair in enumerate(trace.layers):
        for j, tr in enumerate(pair):
            e = errors[k][j]
            got = window.shares(tr, e, T, lags)
            saved, numbers.LAGS = numbers.LAGS, lags  # the reference, once per K
            try:
                want = numbers.shares_beyond(tr, e, T)
            finally:
                numbers.LAGS = saved
            assert got.keys() == want.keys() and got[40] == 0.0
            for K in lags:
                assert abs(got[K] - want[K]) <= 1e-12 * max(want[K], 1e-3), (cell, k, j, K, got[K], want[K])
            assert 0 < got[1] and got[16] < got[4] < got[1]  # a longer window loses less
