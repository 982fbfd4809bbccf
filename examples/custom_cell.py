"""A cell defined outside bptt: an Elman cell whose recurrence is diagonal, one weight per unit.

    z_t = U x_t + b + w * s_{t-1},   s_t = tanh(z_t)          U (H, D), w (H,), b (H,) optional

Registered, it works with every verb: bptt.gradients, bptt.flow, bptt.check, bptt.approx.rtrl,
training and checkpoints, and `--cell diagonal` on the command line of a script that imports it.
Run it: python examples/custom_cell.py
"""
import numpy as np

import bptt
from bptt.cells import Cell, Param


@bptt.cells.register
class Diagonal(Cell):
    """z_t = U x_t + b + w * s_{t-1}, s_t = tanh(z_t): each unit feeds back to itself alone."""

    name, label, model = "diagonal", "diagonal Elman", "Diagonal"
    params = {"U": Param(("H", "D"), role="input"),         # its gradient: the engine's, from d_a
              "w": Param(("H",)),                           # no role: param_grads gives its gradient
              "b": Param(("H",), optional=True, role="input bias")}
    state = ("s",)

    def step(self, m, a, state):
        (s_prev,) = state
        z = a + m.w * s_prev                                # a = U x_t + b, (N, H)
        return (np.tanh(z),), (z,)

    def step_back(self, m, prev, state, cache, d):
        (s,), (ds,) = state, d
        delta = ds * (1 - s * s)                            # dE/dz_t
        return delta, delta, (delta * m.w,)                 # d_a, d_r, dE/ds_{t-1}

    def param_grads(self, m, prev, state, cache, d_a, d_r):
        return {"w": d_r * prev[0]}                         # dE/dw per step and sequence: delta_t * s_{t-1}


if __name__ == "__main__":
    model = bptt.random_model("diagonal", 8, 4, 4, seed=0)
    x, y = np.arange(12) % 4, (np.arange(12) + 1) % 4
    loss, g = bptt.gradients(model, x, y)
    print(model)
    print(f"E = {loss:.6f}, ||dE/dw|| = {np.linalg.norm(g.w):.6f}")
    print("agrees with finite differences:", bptt.check(model, x, y).passed)
    print("||dE_11/ds_k||, k = 11, 9, 7, 5:", [f"{v:.2g}" for v in bptt.flow(model, x, y).dE_ds[11, 11:4:-2]])
