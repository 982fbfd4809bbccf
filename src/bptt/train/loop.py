"""The training loop: batched, deterministic per seed, logged, checkpointed, resumable.

The loop does not depend on the cell (cfg.cell, any registered cell): the model comes from
bptt.model.random_model, the gradients from bptt.backend.backward, which computes for
every cell, and a stream carries the cell's whole state (h, and c for an LSTM) between updates.

One step: a batch (a fresh set of sequences, or the next TBPTT window of the stream with the
carried state), forward, BPTT (full, or the notebook's per-output window with truncate=K),
the objective's scaling (the task's: a mean over scored steps, or min-char-rnn's sum over time
divided by N), + alpha * Omega and its gradient, then the global norm, Pascanu's guard, clipping,
and the optimiser's update. Clipping and Omega live here, never in the gradient code they modify.

Files in the run's folder:
    config.json       the resolved settings
    metrics.jsonl     one JSON line per step: step (updates done), loss (the objective before the
                      update: the mean loss per scored step for adding, copy and temporal order; the
                      loss summed over a sequence's steps, averaged over the batch, for streams, as
                      min-char-rnn reports it), smooth_loss (min-char-rnn's: 0.999 s + 0.001 loss, started at the chance
                      loss), grad_norm and grad_norm_clipped (global 2-norms before and after clipping),
                      omega, fallback; every eval_every steps also rho (spectral radius of W; null for
                      a gated cell, whose W (G H, H) stacks its gates' blocks), lambda1 (largest singular
                      value of W, Pascanu's lambda_1; both of the transition A of a linear recurrence,
                      the LRU's and the linear cell's; both null for a cell with neither W nor A,
                      theory.recurrence_norms), lag_fraction (share of the
                      W-gradient's term norms ||dE_t/dz_k|| ||s_{k-1}|| with lag t - k >= lag_threshold,
                      from bptt.flow on one held-out sequence) and test metrics (test_loss, ...);
                      with stop_on_success the run ends at the first evaluation that meets the
                      task's success criterion (as Pascanu et al.'s code does). With param (W = expm(A)
                      or Cayley(A), bptt.train.reparam) also orthogonality, max |W^T W - I| of the
                      updated W, every step. With floss, floss (the regulariser's value) at the updates
                      that add its gradient (bptt.train.flossing). With minutes (a wall-clock budget)
                      also wall_s, the seconds since this call started, every step; the step that
                      finds the budget spent is the last, and gets the evaluation.
                      For a stack (layers > 1 or bidirectional), bptt.train.stacked says what these
                      are (rho, lambda1 the largest over its layers; lag_fraction its top layer's).
    snapshots/dE_ds_step<S>.npy   bptt.flow's (T, T) table ||dE_t/ds_k|| at the chosen steps
    checkpoint.npz/.json          model + optimiser + RNG + loop state (bptt.train.checkpoint)
    model.npz, vocab.json         the final model (bptt.load_model reads it, a Stack too) and, for
                                  character tasks, its vocabulary
    summary.json      cell, final test metrics, baseline, criterion, success, wall time,
                      out_of_minutes (whether the budget ended the run); with floss, the
                      Lyapunov exponents before and after flossing before training
One process writes into a folder at a time (bptt.files.folder_lock, shared with `bptt sweep`); every
file the loop rewrites goes through bptt.files.write_atomic, so a run killed at any instant can be
resumed, and the temporaries of a killed run are removed when the next one starts.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import tasks as tasks_mod
from .. import cells, fast
from ..backend import backward, forward
from ..files import clean_stale, folder_lock, loads_json, read_text, write_atomic
from ..flow import flow
from ..model import random_model
from ..validate import show, too_big
from . import checkpoint, clip as clipping, flossing, optim, reparam, stacked
from .config import TrainConfig
from .omega import omega as omega_fn
from .tbptt import Stream


STATE_ARRAYS = ("h", "c")  # a stream's carried state in the checkpoint: extra/h, and extra/c for an LSTM
MAX_METRICS_LINE = 4096  # bytes a line of metrics.jsonl may take, on average, when it is read back
BEFORE_CELLS = {"cell": "rnn", "forget_bias": None, "reset_after": None, "r_min": None, "r_max": None,
                "max_phase": None, "normalise": None, "param": None, "param_lr": None,
                "dt": None, "gamma": None, "eps": None, "implicit": None, "floss": None, "floss_steps": None,
                "floss_every": None, "floss_weight": None, "floss_lr": None,
                "layers": 1, "bidirectional": False,
                "minutes": None}  # what older checkpoints' configs lack


class Diverged(RuntimeError):
    """Training met a NaN/Inf loss, gradient or weight; the message says where and how to go on."""


def build_task(cfg: TrainConfig):
    return tasks_mod.make(cfg.task, length=cfg.length, variant=cfg.variant, text=cfg.text, seed=cfg.seed)


def initial_model(cfg: TrainConfig, task):
    """The random model the run starts from: random_model of the config's cell and options (a
    stack of them with layers > 1 or bidirectional: bptt.train.stacked)."""
    rng = np.random.default_rng([cfg.seed, 0])
    if cfg.stacked():
        return stacked.initial(cfg, task, rng)
    return random_model(cfg.cell, cfg.hidden, task.D, task.O, seed=rng, head=task.head, dtype=np.dtype(cfg.dtype),
                        **cfg.model_options())


def lag_fraction(fl, threshold) -> float:
    """Share of the W-gradient's term norms with lag t - k >= threshold (see the module's notes).

    The analysis's Flow.by_lag().beyond[l] is the share at lags > l, so this is beyond[threshold - 1].
    """
    from ..flow import Flow
    from ..validate import integer

    if not isinstance(fl, Flow):
        raise TypeError(f"lag_fraction takes the Flow that bptt.flow returns, got {type(fl).__name__}")
    threshold = integer("threshold", threshold)
    if threshold <= 0:
        return 1.0
    if threshold >= fl.T:
        return 0.0
    share = float(fl.by_lag().beyond[threshold - 1])
    return 0.0 if np.isnan(share) else share


class TrainSummary(dict):
    """What train() returns: the dict written to summary.json (task, cell, steps, solved_at, wall_s,
    baseline, baseline_text, criterion, test_*), shown as a table in a notebook."""

    def _repr_html_(self):
        from ..display import train_summary_html
        return train_summary_html(self)


@dataclass
class _Loop:
    step: int
    smooth: float | None
    last_norm: float | None
    last_norm_step: int | None
    floss: dict | None = None  # the record of flossing before training (bptt.train.flossing)


RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.npz", "checkpoint.json", "model.npz", "summary.json",
             "vocab.json")  # what a run writes into its folder (and snapshots/)


def train(cfg: TrainConfig, out, *, resume=False, force=False, progress=True, log=print):
    """Train per cfg, writing into the folder out; returns the summary dict.

    resume=True continues from out/checkpoint.npz and produces the same metrics as an uninterrupted run;
    with more steps than the checkpoint's run it extends that run to them, to the same numbers as a run
    of that many steps from the start. A folder that holds a run already is refused unless resume, or
    force, which removes that run's files (RUN_FILES, snapshots/) first.
    Raises Diverged when the loss, gradient or weights stop being finite (cfg.fallback "stop").
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"train takes a TrainConfig (bptt.train.resolve(...)), got {type(cfg).__name__}")
    cfg = cfg.validate()
    fast.wait_for_kernels()  # the same loops from the first step: a resumed run repeats its numbers bit for bit
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: give a folder for the run's files")
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        for folder in (out, out / "snapshots"):
            if folder.is_dir():
                clean_stale(folder)
        held = [f for f in RUN_FILES if (out / f).exists()]
        if held and not resume:
            if not force:
                raise ValueError(f"{out} holds a run already ({', '.join(held)}): --resume continues it, --force "
                                 "starts a new one in its place")
            for f in held:
                (out / f).unlink()
            if (out / "snapshots").is_dir():
                shutil.rmtree(out / "snapshots")
        return _train(cfg, out, resume, progress, log)


def _train(cfg, out, resume, progress, log):
    ckpt_path = out / "checkpoint.npz"
    task = build_task(cfg)
    k2 = cfg.backprop or cfg.chunk
    steps = k2 if task.kind == "stream" else getattr(task, "T", k2)
    too_big(f"batch = {cfg.batch} sequences of {steps} steps of {task.O} outputs", cfg.batch * steps * task.O)
    probe_x, probe_y = task.probe()
    P = np.shape(probe_x)[0]
    too_big(f"the evaluations' (T, T) tables of the gradient's flow over T = {P} steps", 4 * P * P)
    opt = reparam.optimizer(cfg) if cfg.param else optim.get(cfg.optimizer, cfg.lr)
    stream = Stream(task.stream(cfg.batch), cfg.chunk, k2) if task.kind == "stream" else None
    rng = np.random.default_rng([cfg.seed, 1])
    metrics_path = out / "metrics.jsonl"
    if resume:
        model, opt_state, meta, extra = loaded = checkpoint.load(ckpt_path)
        fresh = initial_model(cfg, task)
        A = _loaded_A(ckpt_path, cfg, extra, fresh.H)
        table = reparam.trainable(fresh.params, reparam.initial_A(cfg, fresh.H)) if cfg.param else fresh.params
        checkpoint.verify(ckpt_path, loaded, fresh, opt.init(table), cfg.steps, stream is not None)
        saved = {**BEFORE_CELLS, **meta["config"], "steps": cfg.steps, "minutes": cfg.minutes}  # more steps extend the run
        saved["cell"] = cells.canonical(saved["cell"])
        if saved != cfg.to_dict():
            diff = sorted(k for k in cfg.to_dict() if saved.get(k) != cfg.to_dict()[k])
            raise ValueError(f"the checkpoint in {out} was made with other settings ({', '.join(diff)}); "
                             "resume with the same settings")
        try:
            rng.bit_generator.state = meta["rng"]
        except (ValueError, TypeError, KeyError, OverflowError):
            raise ValueError(f"{ckpt_path}: rng is not the state of a {type(rng.bit_generator).__name__} "
                             "generator") from None
        if stream is not None:
            stream.restore(meta["stream"], tuple(extra[k] for k in STATE_ARRAYS if k in extra) or None,
                           where=str(ckpt_path))
        st = _Loop(meta["step"], meta["smooth"], meta["last_norm"], meta["last_norm_step"],
                   flossing.record(meta.get("floss"), cfg, str(ckpt_path)))
        _truncate_metrics(metrics_path, st.step, log, limit=(cfg.steps + 1) * MAX_METRICS_LINE)
    else:
        model = initial_model(cfg, task)
        A = reparam.initial_A(cfg, model.H) if cfg.param else None
        if cfg.param:
            model = reparam.start(cfg, model, A)
        floss_rec = None
        if cfg.floss:
            model, floss_rec = flossing.before(cfg, task, model, log if progress else None)
        opt_state = opt.init(reparam.trainable(model.params, A) if cfg.param else model.params)
        st = _Loop(0, None, None, None, floss_rec)
        write_atomic(metrics_path, b"")
    write_atomic(out / "config.json", json.dumps(cfg.to_dict(), indent=1))
    if progress:
        log(task.describe())
    snap_dir = out / "snapshots"
    t0 = time.perf_counter()
    bar = _bar(cfg, st.step, progress)
    out_of_time = False
    with open(metrics_path, "a") as mf:
        if st.step == 0 and 0 in cfg.snapshots:
            _snapshot(snap_dir, 0, model, probe_x, probe_y)
        while st.step < cfg.steps:
            with np.errstate(over="ignore", invalid="ignore"):  # non-finite numbers are checked and reported
                model, opt_state, rec, A = _step(cfg, task, model, opt, opt_state, stream, rng, st, ckpt_path, A)
            st.step += 1
            rec = {"step": st.step, **rec}
            if cfg.minutes is not None:
                rec["wall_s"] = time.perf_counter() - t0
                out_of_time = rec["wall_s"] >= 60 * cfg.minutes
            if st.step % cfg.eval_every == 0 or st.step == cfg.steps or out_of_time:
                rec.update(_analysis(cfg, task, model, probe_x, probe_y))
            if st.step in cfg.snapshots:
                _snapshot(snap_dir, st.step, model, probe_x, probe_y)
            mf.write(json.dumps(rec) + "\n")
            mf.flush()
            if st.step % cfg.checkpoint_every == 0 or st.step == cfg.steps:
                _save(ckpt_path, cfg, model, opt_state, rng, stream, st, A)
            if (cfg.stop_on_success and rec.get("test_success")) or out_of_time:
                _save(ckpt_path, cfg, model, opt_state, rng, stream, st, A)
                break
            if bar is not None:
                bar.update(1)
                bar.set_postfix({f"loss ({_loss_unit(task)})": f"{rec['loss']:.4g}",
                                 "smoothed": f"{rec['smooth_loss']:.4g}", "gnorm": f"{rec['grad_norm']:.3g}"},
                                refresh=False)
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    final = task.evaluate(model)
    model.save(out / "model.npz")
    if hasattr(task, "vocab"):
        write_atomic(out / "vocab.json", json.dumps({"chars": task.vocab.chars}))
    summary = {"task": task.name, "cell": cfg.cell, "steps": st.step,
               "solved_at": st.step if final["success"] else None, "wall_s": wall, "baseline": float(task.baseline),
               "baseline_text": task.baseline_text, "criterion": task.criterion, "out_of_minutes": out_of_time,
               **{f"test_{k}": v for k, v in final.items()}}
    if cfg.floss:
        summary["floss"] = st.floss
    write_atomic(out / "summary.json", json.dumps(summary, indent=1))
    if progress:
        log(f"test loss {final['loss']:.5g} (memoryless baseline {task.baseline:.5g}); "
            f"success: {'yes' if final['success'] else 'no'} (criterion: {task.criterion})")
    return TrainSummary(summary)


def _bar(cfg, start, progress):
    if not progress:
        return None
    from ..progress import bar  # a bar in a terminal, a line every few seconds on a pipe
    return bar(cfg.steps, f"train {cfg.task}", "step", initial=start, delay=0, dynamic_ncols=True, mininterval=0.5)


def _loss_unit(task) -> str:
    """What the bar's loss and smoothed loss are: the mean per scored step, or the sum over a sequence."""
    return "per step" if task.reduction == "mean" else "per sequence"


def _loaded_A(path, cfg, extra, H):
    """A from a checkpoint's extra/A (taken out of extra): (H, H) float64, finite; None without param."""
    A = extra.pop("A", None)
    if not cfg.param:
        if A is not None:
            raise ValueError(f"{path} holds extra/A, a parametrised W's A, but the run has no param")
        return None
    if A is None or A.shape != (H, H) or A.dtype != np.float64 or not np.all(np.isfinite(A)):
        got = "nothing" if A is None else f"shape {A.shape}, dtype {A.dtype}"
        raise ValueError(f"{path}: a run with param {cfg.param} needs extra/A, finite, of shape ({H}, {H}) and dtype "
                         f"float64, got {got}")
    return A


def _step(cfg, task, model, opt, opt_state, stream, rng, st, ckpt_path, A=None):
    N = cfg.batch
    if stream is not None:
        x, y, h0 = stream.window(stacked.state_sizes(model), model.dtype, stacked.entries(model))
    else:
        x, y = task.batch(rng, N)
        h0 = None
    trace = forward(model, x, h0)
    scale = 1.0 if task.reduction == "mean" else 1.0 / N  # per sequence
    try:
        loss, grads = backward(trace, y, truncate=cfg.truncate, reduction=task.reduction)
        g = {k: v * scale for k, v in grads.params.items()}
    except FloatingPointError:  # an overflow: handled below as a loss and gradient that are not finite
        loss, g = np.nan, {k: np.full_like(v, np.nan) for k, v in model.params.items()}
    per_seq = loss * scale
    rec = {"loss": per_seq}
    if cfg.omega > 0:
        om, og = omega_fn(trace, y, reduction=task.reduction)
        rec["omega"] = om
        g = {k: v + cfg.omega * og[k].astype(v.dtype) for k, v in g.items()}
    if flossing.due(cfg, st.step + 1):
        rec["floss"], fg = flossing.during(cfg, model, x, h0)
        g = {k: v + cfg.floss_weight * fg[k] for k, v in g.items()}
    params = model.params
    if cfg.param:  # W's gradient goes to A
        g = reparam.gradients(cfg, A, g) if all(np.all(np.isfinite(v)) for v in g.values()) else \
            reparam.trainable(g, np.full_like(A, np.nan))
        params = reparam.trainable(params, A)
    norm = clipping.global_norm(g)
    rec["grad_norm"] = norm
    bad = not np.isfinite(per_seq) or clipping.untrustworthy(norm)
    if bad:
        if cfg.fallback == "stop":
            raise Diverged(_diverged(st, norm, per_seq, ckpt_path))
        g = clipping.fallback(g, params, mode=cfg.fallback)
        rec["fallback"] = True
    else:
        st.last_norm, st.last_norm_step = norm, st.step + 1
        if cfg.clip_value is not None:
            g = clipping.clip_by_value(g, cfg.clip_value)
        if cfg.clip_per_param is not None:
            g = clipping.clip_per_param_norm(g, cfg.clip_per_param)
        if cfg.clip_norm is not None:
            g, _ = clipping.clip_by_global_norm(g, cfg.clip_norm)
    rec["grad_norm_clipped"] = clipping.global_norm(g)
    params, opt_state = opt.update(g, opt_state, params)
    if not all(np.all(np.isfinite(p)) for p in params.values()):
        raise Diverged(_diverged(st, norm, per_seq, ckpt_path, weights=True))
    if cfg.param:
        A, model = reparam.finish(cfg, model, params)
        rec["orthogonality"] = reparam.orthogonality(model.W)
    else:
        model = model.replace(**{k: v.astype(model.dtype, copy=False) for k, v in params.items()})
    if stream is not None:
        stream.advance(trace)
    if st.smooth is None:
        st.smooth = _chance(task, y, N) if task.head == "softmax" else per_seq
    if np.isfinite(per_seq):
        st.smooth = st.smooth * 0.999 + per_seq * 0.001
    rec["smooth_loss"] = st.smooth
    return model, opt_state, rec, A


def _chance(task, y, N):
    """min-char-rnn's starting smoothed loss, in the unit of the loss it smooths: -ln(1/O) per scored
    step (tasks whose loss is the mean per scored step: adding, copy, temporal), or that times the
    scored steps of a sequence (streams, whose loss is summed over a sequence)."""
    if task.reduction == "mean":
        return float(np.log(task.O))
    return float(np.log(task.O) * (np.asarray(y) >= 0).sum() / N)


def _diverged(st, norm, loss, ckpt_path, weights=False):
    what = "the updated weights are not finite" if weights else \
        f"the loss is {float(loss):.6g} and the gradient norm is {float(norm):.6g}"
    last = (f"the last finite gradient norm was {st.last_norm:.6g} at step {st.last_norm_step}"
            if st.last_norm is not None else "no finite gradient norm was seen")
    where = (f"resume from {ckpt_path} with --resume (and a smaller --lr, or --clip-norm, or --fallback shrink)"
             if ckpt_path.exists() else "no checkpoint was written yet; start again with a smaller --lr or --clip-norm")
    return f"training diverged at step {st.step + 1}: {what}; {last}; {where}"


def _analysis(cfg, task, model, px, py):
    rho, lambda1 = stacked.norms(model)  # a gated W (G H, H): no rho; a linear recurrence: its transition's
    rec = {"rho": rho, "lambda1": lambda1}
    one, x = stacked.flow_model(model, px)  # a stack's top layer (None for a bidirectional one)
    rec["lag_fraction"] = None if one is None else lag_fraction(flow(one, x, py), cfg.lag_threshold)
    rec.update({f"test_{k}": (float(v) if not isinstance(v, bool) else v) for k, v in task.evaluate(model).items()})
    return rec


def _snapshot(snap_dir, step, model, px, py):
    snap_dir.mkdir(exist_ok=True)
    one, x = stacked.flow_model(model, px)
    table = flow(one, x, py).dE_ds
    write_atomic(snap_dir / f"dE_ds_step{step}.npy", lambda f: np.save(f, table))


def _save(path, cfg, model, opt_state, rng, stream, st, A=None):
    meta = {"step": st.step, "smooth": st.smooth, "last_norm": st.last_norm, "last_norm_step": st.last_norm_step,
            "rng": rng.bit_generator.state, "config": cfg.to_dict()}
    if st.floss is not None:
        meta["floss"] = st.floss
    extra = {}
    if stream is not None:
        scalars, state = stream.state()
        meta["stream"] = scalars
        extra.update(zip(STATE_ARRAYS, state or ()))
    if A is not None:
        extra["A"] = A
    checkpoint.save(path, model, opt_state, meta, extra)


def _truncate_metrics(path, step, log=print, limit=None):
    """Keep the metric lines of steps <= step (the checkpoint's); later ones are recomputed. The file
    is read up to limit bytes (a regular file only) and rewritten atomically: a kill at any instant
    leaves the old history or the new one.

    A last line cut short (a run killed while writing it) is dropped and said through log; a
    missing file, another line that is not a JSON record with its step, or a history that does not
    reach the checkpoint's step is a ValueError: resuming would lose the run's history."""
    if not path.exists():
        if step == 0:
            return
        raise ValueError(f"{path} is missing: the checkpoint is at step {step}, and resuming without the "
                         "history of steps 1..{0} would lose it; restore the file or start a new run".format(step))
    lines = read_text(path, "the metrics history", limit or MAX_METRICS_LINE * (step + 1)).split("\n")
    records = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            rec = loads_json(ln, f"{path}: line {i + 1}", depth=2)
            ok = isinstance(rec, dict) and isinstance(rec.get("step"), int) and not isinstance(rec["step"], bool)
        except ValueError:
            rec, ok = None, False
        if not ok:
            if i == len(lines) - 1:  # the last line, with no newline after it: cut short by a kill
                log(f"{path}: line {i + 1} was cut short (the run stopped while writing it); dropped it")
                continue
            raise ValueError(f"{path}: line {i + 1} is not a metrics record (a JSON object with its step): "
                             f"{show(ln[:60])}")
        records.append((rec["step"], ln))
    keep = [ln for s, ln in records if s <= step]
    last = max((s for s, _ in records if s <= step), default=0)
    if last != step:
        raise ValueError(f"{path} ends at step {last} but the checkpoint is at step {step}: the history "
                         "between them is lost; restore the file or start a new run")
    write_atomic(path, "".join(ln + "\n" for ln in keep))
