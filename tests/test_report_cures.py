"""The report's section on the cures (report/cures.py): its numbers are those of the models rebuilt
here by the public calls (`bptt train --floss k` through bptt.train.train, bptt.random_model),
flossing brings the k leading exponents within 0.01 of 0, the orthogonal W is orthogonal, and the
section's text and table quote the numbers computed."""
import numpy as np
import pytest

import bptt
from bptt import floss
from bptt.model import Model


@pytest.fixture(scope="module")
def section():
    from bptt.report import cures
    from bptt.report.content import Settings

    st = Settings.quick()
    return st, cures.gather(st, lambda fig: b"<svg/>")


def _batch(st, task):
    """The batch bptt train's flossing draws (bptt.train.flossing: a generator of its own, [seed, 2])."""
    from bptt.train import flossing, resolve
    from bptt.train.loop import initial_model
    from bptt.report.cures import floss_settings

    cfg = resolve(floss_settings(st))
    x, h0 = flossing.batch(cfg, task, initial_model(cfg, task))
    return cfg, x, h0


def _lyapunov(model, x):
    """The exponents of every sequence by bptt.lyapunov (spectra.py's QR iteration): (N, S)."""
    trace = bptt.forward(model, x)
    return np.array([bptt.lyapunov(trace, seq=n).exponents for n in range(len(x))])


def test_the_flossing_numbers_are_those_of_bptt_train_floss_rebuilt_here(section, tmp_path):
    from bptt.report.cures import floss_settings
    from bptt.train import resolve, train
    from bptt.train.loop import build_task, initial_model

    st, s = section
    cfg = resolve(floss_settings(st))
    summary = train(cfg, tmp_path / "run", progress=False)  # the --floss path, steps 0: the flossed model
    task = build_task(cfg)
    start, flossed = initial_model(cfg, task), Model.load(tmp_path / "run" / "model.npz")
    _, x, h0 = _batch(st, task)
    assert h0 is None and x.shape == (st.N, st.T)
    k = s["k"]
    for label, m in (("before flossing", start), ("after flossing", flossed)):
        lam = floss.exponents(m, x)
        np.testing.assert_allclose(s["models"][label]["exponents"], lam, rtol=0, atol=1e-12, err_msg=label)
        np.testing.assert_allclose(lam, _lyapunov(m, x), rtol=0, atol=1e-10, err_msg=label)
    before, after = floss.exponents(start, x)[:, :k], floss.exponents(flossed, x)[:, :k]
    assert k == cfg.floss == st.floss_k and summary["floss"]["updates"] == st.floss_steps
    assert np.all(before < -0.1), before  # they moved: the random network contracts clearly
    assert np.all(np.abs(after) <= 0.01), after  # the criterion
    assert s["floss"]["record"]["after"]["furthest"] == summary["floss"]["after"]["furthest"]


def test_the_orthogonal_and_glorot_networks(section):
    from bptt.report.cures import floss_settings, orthogonal_pair
    from bptt.train import resolve
    from bptt.train.loop import build_task

    st, s = section
    task = build_task(resolve(floss_settings(st)))
    _, x, _ = _batch(st, task)
    pair = orthogonal_pair(st, task)
    g, o = pair["Glorot"], pair["orthogonal"]
    assert np.max(np.abs(o.W.T @ o.W - np.eye(st.H))) <= 1e-12
    assert np.max(np.abs(g.W)) <= np.sqrt(6 / (2 * st.H)) and np.max(np.abs(g.W.T @ g.W - np.eye(st.H))) > 0.1
    assert all(np.array_equal(g.params[n], o.params[n]) for n in g.params if n != "W")  # only W differs
    assert s["models"]["orthogonal"]["orthogonality"] <= 1e-12
    for label, m in pair.items():
        lam = _lyapunov(m, x)
        np.testing.assert_allclose(s["models"][label]["exponents"], lam, rtol=0, atol=1e-10, err_msg=label)
        np.testing.assert_allclose(floss.exponents(m, x), lam, rtol=0, atol=1e-10, err_msg=label)
    # the orthogonal spectrum is the narrower one: |tanh'| <= 1 times singular values all 1
    spread = {lab: np.ptp(np.array(s["models"][lab]["mean"])) for lab in pair}
    assert spread["orthogonal"] < spread["Glorot"], spread


def test_the_flow_numbers_are_the_decay_of_each_sequences_table(section):
    from bptt.report.cures import flossed, orthogonal_pair

    st, s = section
    task, before, after, _, x, y = flossed(st)
    lag = s["lag"]
    for label, m in {"before flossing": before, "after flossing": after, **orthogonal_pair(st, task)}.items():
        fls = [bptt.flow(m, x[n], y[n]) for n in range(st.N)]
        assert s["models"][label]["decay"] == pytest.approx(np.mean([f.decay_rate() for f in fls]), rel=1e-12)
        assert s["models"][label]["ratio_lag"] == pytest.approx(np.mean([f.by_lag().ratio_mean[lag] for f in fls]),
                                                                rel=1e-12)


def test_the_section_quotes_its_numbers(section):
    from html import escape

    from bptt.report import cures
    from bptt.report.html import _table

    st, s = section
    html = cures.render(s, lambda name, alt, caption: f"<img alt={name!r}>", _table)
    assert html.count("<img") == 4
    k, m = s["k"], s["models"]
    for label, r in m.items():
        assert f"<td class=\"l\">{label}</td><td class=\"\">{r['mean'][0]:.4f}</td>" in html, label
        assert f"{r['decay']:.4g}</td>" in html, label
    b, a = np.array(m["before flossing"]["exponents"]), np.array(m["after flossing"]["exponents"])
    text = " ".join(escape(t) for t in s["text"])
    assert ", ".join(f"{v:.4f}" for v in b[:, :k].mean(axis=0)) in text
    assert ", ".join(f"{v:.4f}" for v in a[:, :k].mean(axis=0)) in text
    assert f"within +-{cures.TOL:g}" in text
    assert f"decay rate goes from {m['before flossing']['decay']:.3g} to {m['after flossing']['decay']:.3g}" in text
