/* bptt explorer page: the controls, the views, and window.bpttExplorer (the engine's public face).
   Everything is computed here by bpttEngine (engine.js); nothing is fetched. */
"use strict";
(function () {
  var E = bpttEngine;

  // --- the public functions: nested arrays in, nested arrays out ------------------------------
  function flat(a, name) {
    if (a === undefined || a === null) return null;
    var rows = Array.isArray(a[0]) ? a : [a], out = new Float64Array(rows.length * rows[0].length), n = 0;
    rows.forEach(function (r) { if (r.length !== rows[0].length) throw new TypeError(name + " must be rectangular"); r.forEach(function (v) { out[n++] = v; }); });
    return out;
  }
  function nested(a, rows, cols) {
    var out = [];
    for (var i = 0; i < rows; i++) out.push(Array.from(a.subarray(i * cols, (i + 1) * cols)));
    return out;
  }
  function inputs(x) {  // ids (T,) or dense (T, D)
    return Array.isArray(x[0]) ? { dense: x.map(function (r) { return Float64Array.from(r); }) } : { ids: Int32Array.from(x) };
  }
  function size(s, H, D) { return s === "D" ? D : E.blocks(s) * H; }
  function shaped(a, shape, H, D) {  // a flat parameter as nested arrays of its declared shape
    return shape.length === 1 ? Array.from(a) : nested(a, size(shape[0], H, D), a.length / size(shape[0], H, D));
  }
  function hidden(meta, p) {  // H: the first parameter's plain H axis, else its first kH axis over k
    var plain = meta.params.filter(function (q) { return p[q[0]] && q[1].indexOf("H") >= 0; });
    var q = plain.length ? plain[0] : meta.params.filter(function (q2) { return p[q2[0]]; })[0];
    if (!q) throw new TypeError("the " + meta.name + " cell needs " + meta.params.map(function (q3) { return q3[0]; }).join(", "));
    var j = plain.length ? q[1].indexOf("H") : 0, a = p[q[0]], n = j === 0 ? a.length : a[0].length;
    return n / (plain.length ? 1 : E.blocks(q[1][0]));
  }
  function run(p) {
    var cell = p.cell || "rnn", meta = E.META[cell];
    if (!meta) throw new TypeError("unknown cell " + JSON.stringify(cell) + ": expected one of " + E.CELLS.join(", "));
    var input = meta.params.filter(function (q) { return q[3] === "input"; })[0];
    if (!p[input[0]] || !p.V) throw new TypeError("the " + cell + " cell needs " + (p.V ? input[0] : "V"));
    var H = hidden(meta, p), D = p[input[0]][0].length, O = p.V.length, T = p.x.length, S = meta.widths[0] * H, params = {};
    meta.params.forEach(function (q) {
      var name = q[0], a = flat(p[name], name);
      if (a === null) { if (!q[2]) throw new TypeError("the " + cell + " cell needs " + name); return; }
      var want = q[1].reduce(function (n, s) { return n * size(s, H, D); }, 1);
      if (a.length !== want) throw new TypeError(name + " must be (" + q[1].join(", ") + ") with H = " + H + ", D = " + D + ": " + want + " numbers, got " + a.length);
      params[name] = a;
    });
    if (p.V[0].length !== S) throw new TypeError("V must be (O, " + S + "), got " + p.V[0].length + " columns");
    var m = E.model({ cell: cell, H: H, D: D, O: O, params: params, V: flat(p.V, "V"), c: flat(p.c, "c"),
                      activation: p.activation || "tanh", resetAfter: p.reset_after !== false, settings: p });
    var res = E.decompose(m, inputs(p.x), Array.from(p.y), T, flat(p.h0, "h0"), flat(p.c0, "c0"));
    var grads = {};
    meta.params.forEach(function (q) { if (params[q[0]]) grads[q[0]] = shaped(res.grads[q[0]], q[1], H, D); });
    grads.V = nested(res.grads.V, O, S);
    if (res.grads.c) grads.c = Array.from(res.grads.c);
    var out = { loss: res.loss, dE_ds: nested(res.dE_ds, T, T), grads: grads, h0: Array.from(res.h0) };
    if (res.dE_dc) { out.dE_dc = nested(res.dE_dc, T, T); out.c0 = Array.from(res.c0); }
    return out;
  }

  var api = {
    /* any cell the page has: {cell ("rnn" when left out), its parameters by the library's names
       (U (H, D), W (H, H), b? for rnn; U, W, b?, bh? in PyTorch's gate order for lstm and gru;
       nu_log, theta_log, B_re, B_im, gamma_log? for lru; U, b? for mingru and minlstm; lam, B for
       linear; U, W, Wz, b? for cornn), V (O, S), c?, the cell's settings by the library's names
       (activation (rnn), reset_after (gru), dt, gamma, eps, implicit (cornn); the registry's default
       where left out), x ids (T,) or dense (T, D), y ids (T,), h0? (S,), c0? (the state's second
       entry: lstm's c, cornn's z)} -> {loss, dE_ds (T, T), grads by name, h0, dE_dc? and c0? (the
       second entry's)}: softmax cross-entropy summed over t */
    flow: function (p) { return run(p); },
    gatedFlow: function (p) { return run(p); },  // the same, kept for its old callers
    cells: E.CELLS,  // the cells the page has, the registry's names in its order
    theory: function (p) { return E.theory(E.model({ cell: "rnn", H: p.W.length, D: 1, O: 1, params: { W: flat(p.W, "W") }, activation: p.activation })); },
    spectralRadius: function (W) { return E.spectralRadius(flat(W, "W"), W.length); },
    singularValues: function (M) { return E.singularValues(flat(M, "M"), M.length); },
    update: null, lastUpdateMs: null, updates: 0, view: null,
    product: E.product,  // "wasm" (the WebAssembly kernel) or "js" (where the page's policy forbids it)
    /* the network on display, as nested arrays: {cell, settings, its parameters by name, V, x, y} */
    current: function () {
      var m = cache.setup.model, out = { cell: m.cell, settings: m.settings, V: nested(m.V, m.O, m.S),
        x: Array.from(cache.setup.x.ids), y: Array.from(cache.setup.y) };
      m.meta.params.forEach(function (q) { if (m.params[q[0]]) out[q[0]] = shaped(m.params[q[0]], q[1], m.H, m.D); });
      return out;
    }
  };
  window.bpttExplorer = api;

  // --- the page -------------------------------------------------------------------------------
  var $ = function (id) { return document.getElementById(id); };
  var CONTROLS = ["cell", "H", "T", "rho", "activation", "init", "r_min", "r_max", "dt", "gamma", "eps", "inputScale", "seed", "t", "K"];
  var SETTINGS = ["dt", "gamma", "eps"];  // controls named as a cell's numeric settings (the coRNN's), passed to its model
  var SPECTRUM_LAGS = [1, 8, 32];
  var cache = { key: null, setup: null, res: null };

  // whether a control applies to a cell, from the registry's description of it: rho and the
  // initialisation of W to a cell with a recurrent W, the activation to a cell with that setting,
  // the eigenvalues' modulus range to a cell whose random model takes r_min and r_max, a control
  // named as a setting (dt, gamma, eps) to a cell with that setting
  function applies(meta, id) {
    if (id === "rho" || id === "init") return meta.params.some(function (q) { return q[3] === "recurrent"; });
    if (id === "activation" || SETTINGS.indexOf(id) >= 0) return id in meta.settings;
    if (id === "r_min" || id === "r_max") return meta.options.indexOf("r_min") >= 0;
    return true;
  }

  function settings(moved) {
    var v = function (id) { return $(id).value; };
    var rmin = +v("r_min"), rmax = +v("r_max");
    if (rmin > rmax) {  // the ring keeps r_min <= r_max: the other end follows the one moved
      if (moved === "r_min") $("r_max").value = rmax = rmin; else $("r_min").value = rmin = rmax;
    }
    var o = { cell: v("cell"), H: +v("H"), T: +v("T"), rho: +v("rho"), activation: v("activation"), init: v("init"),
              rmin: rmin, rmax: rmax, inputScale: +v("inputScale"), seed: +v("seed"), t: +v("t"), K: +v("K"), vocab: 8, settings: {} };
    SETTINGS.forEach(function (id) { o[id] = o.settings[id] = +v(id); });
    $("t").max = o.T - 1; $("K").max = o.T;
    o.t = Math.min(o.t, o.T - 1); o.K = Math.min(o.K, o.T);
    var meta = E.META[o.cell];
    CONTROLS.forEach(function (id) {
      var s = $(id + "-value"), on = applies(meta, id), label = document.querySelector("label[for='" + id + "']");
      if (s) s.textContent = id === "t" ? o.t : id === "K" ? o.K : v(id);
      $(id).disabled = !on;
      if (label) label.className = on ? "" : "off";
    });
    return o;
  }

  function update(ev) {
    var t0 = performance.now(), o = settings(ev && ev.target ? ev.target.id : null), meta = E.META[o.cell];
    var key = [o.cell, o.H, o.T, o.rho, o.activation, o.init, o.rmin, o.rmax, o.dt, o.gamma, o.eps, o.inputScale, o.seed, o.K].join("|");
    if (key !== cache.key) {
      cache.setup = E.randomSetup(o);
      cache.res = E.decompose(cache.setup.model, cache.setup.x, cache.setup.y, o.T, null, null, o.K);
      cache.theory = E.theory(cache.setup.model);
      cache.key = key;
    }
    var m = cache.setup.model, res = cache.res, th = cache.theory;
    var errs = E.outputErrors(m, res, o.t), terms = E.termNorms(m, res, o.t, errs);
    var trunc = E.truncatedTerms(m, res, o.t, o.K, errs);
    var spectra = E.jacobianSpectra(m, res, o.t, SPECTRUM_LAGS);
    var lags = lagCurves(res, o.t);
    drawHeatmap(res, o);
    drawLags(lags, th, o);
    drawSpectra(spectra, th, o, meta);
    drawTerms(terms, o, meta);
    writeVerdict(th, lags, o);
    writeTruncation(m, res, trunc, terms, o);
    api.view = { settings: o, param: meta.shown, loss: res.loss, terms: terms, spectra: spectra, verdict: th.verdict, reason: th.reason,
                 lambda1: th.lambda1, rho: th.rho, envelope: th.envelope || null, stepBound: th.stepBound || null, lagMean: lags.mean, lagOwn: lags.own,
                 truncation: trunc.summary };
    api.lastUpdateMs = performance.now() - t0;
    api.updates += 1;
    $("timing").textContent = "updated in " + api.lastUpdateMs.toFixed(1) + " ms; E = " + res.loss.toPrecision(6);
    return api.lastUpdateMs;
  }
  api.update = function () { return update(null); };

  // ratio ||dE_t/ds_{t-l}|| / ||dE_t/ds_t||: its mean over outputs (as bptt's by_lag) and output t's own
  function lagCurves(res, t) {
    var T = res.T, d = res.dE_ds, mean = new Float64Array(T), count = new Float64Array(T), own = [];
    for (var tt = 0; tt < T; tt++) {
      var base = d[tt * T + tt];
      for (var l = 0; l <= tt; l++) {
        var r = base > 0 ? d[tt * T + tt - l] / base : 0;
        mean[l] += r; count[l] += 1;
        if (tt === t) own.push(r);
      }
    }
    for (var l2 = 0; l2 < T; l2++) mean[l2] /= count[l2];
    return { mean: Array.from(mean), own: own };
  }

  // --- drawing --------------------------------------------------------------------------------
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function colour(u) {
    u = Math.max(0, Math.min(1, u)) * (VIRIDIS.length - 1);
    var i = Math.min(Math.floor(u), VIRIDIS.length - 2), f = u - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }
  function log10(v) { return v > 0 ? Math.log10(v) : -Infinity; }
  function range(values, floor) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    lo = Math.max(lo, hi - (floor || 30));
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    return [lo, hi];
  }
  function ctx2d(id) {
    var c = $(id), g = c.getContext("2d");
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
    g.font = "12px sans-serif"; g.fillStyle = "#222"; g.strokeStyle = "#222";
    return g;
  }
  // ticks at 1, 2 or 5 times a power of ten, at least MIN_TICKS of them on an axis (every integer
  // of an integer axis shorter than that); a label that rounds to zero is "0", never "-0"
  var MIN_TICKS = 4;
  function ticks(lo, hi, integer) {
    var a = Math.min(lo, hi), b = Math.max(lo, hi), span = b - a || 1, out = [];
    var p = Math.pow(10, Math.floor(Math.log10(span / MIN_TICKS))), steps = [5 * p, 2 * p, p, p / 2, p / 5];
    for (var i = 0; i < steps.length; i++) {
      var step = integer ? Math.max(1, Math.round(steps[i])) : steps[i];
      out = [];
      for (var j = Math.ceil(a / step - 1e-9); j * step <= b + 1e-9 * span; j++) out.push(j * step);
      if (out.length >= MIN_TICKS || (integer && step === 1)) return { values: out, step: step };
    }
    return { values: out, step: steps[steps.length - 1] };
  }
  function fmtTick(v, step) {
    var digits = step >= 1 || !isFinite(step) ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
    var s = v.toFixed(digits);
    return +s === 0 ? "0" : s;
  }
  function at(r, lo, len, v) { return lo + (v - r[0]) / (r[1] - r[0]) * len; }  // v's pixel on an axis
  // the frame, its ticks and labels; xr, yr: the values at the frame's left and right, bottom and top
  function axes(g, box, xlab, ylab, xr, yr, integer) {
    integer = integer || {};
    g.strokeStyle = "#444"; g.lineWidth = 1; g.setLineDash([]); g.strokeRect(box.x, box.y, box.w, box.h);
    g.fillStyle = "#222"; g.textAlign = "center";
    var tx = ticks(xr[0], xr[1], integer.x), ty = ticks(yr[0], yr[1], integer.y), widest = 0;
    g.beginPath();
    tx.values.forEach(function (v) {
      var px = at(xr, box.x, box.w, v);
      g.moveTo(px, box.y + box.h); g.lineTo(px, box.y + box.h + 4);
      g.fillText(fmtTick(v, tx.step), px, box.y + box.h + 16);
    });
    g.textAlign = "right";
    ty.values.forEach(function (v) {
      var py = at(yr, box.y + box.h, -box.h, v), label = fmtTick(v, ty.step);
      g.moveTo(box.x, py); g.lineTo(box.x - 4, py);
      g.fillText(label, box.x - 6, py + 4);
      widest = Math.max(widest, g.measureText(label).width);
    });
    g.stroke();
    g.textAlign = "center";
    g.fillText(xlab, box.x + box.w / 2, box.y + box.h + 32);
    g.save(); g.translate(Math.max(10, box.x - 14 - widest), box.y + box.h / 2); g.rotate(-Math.PI / 2); g.fillText(ylab, 0, 0); g.restore();
    g.textAlign = "left";
  }
  function line(g, box, xr, yr, xs, ys, style, width, dash) {
    g.save(); g.beginPath(); g.rect(box.x, box.y, box.w, box.h); g.clip();
    g.strokeStyle = style; g.lineWidth = width || 1.5; g.setLineDash(dash || []); g.beginPath();
    var started = false;
    for (var i = 0; i < xs.length; i++) {
      if (!isFinite(ys[i])) { started = false; continue; }
      var px = box.x + (xs[i] - xr[0]) / (xr[1] - xr[0] || 1) * box.w, py = box.y + (1 - (ys[i] - yr[0]) / (yr[1] - yr[0])) * box.h;
      if (started) g.lineTo(px, py); else g.moveTo(px, py);
      started = true;
    }
    g.stroke(); g.restore();
  }
  // a legend inside the frame: one box sized to its labels, in the first of the corners that covers
  // the fewest of the points given ([px, py] on the canvas); an item: [label, colour, dash?, "box"?]
  // (a filled swatch for bars and cells, a line otherwise)
  var PAD = 8, ROW = 16;
  function legendSize(g, items) {
    var w = 0;
    items.forEach(function (it) { w = Math.max(w, g.measureText(it[0]).width); });
    return { w: Math.ceil(w) + 30 + 2 * PAD, h: ROW * items.length + 2 * PAD - 2 };
  }
  function legend(g, box, items, corners, points) {
    var size = legendSize(g, items), best = null;
    (corners || ["top right"]).forEach(function (corner) {
      var x = corner.indexOf("left") >= 0 ? box.x + 6 : box.x + box.w - size.w - 6;
      var y = corner.indexOf("bottom") >= 0 ? box.y + box.h - size.h - 6 : box.y + 6;
      var covered = (points || []).filter(function (p) { return p[0] >= x && p[0] <= x + size.w && p[1] >= y && p[1] <= y + size.h; }).length;
      if (!best || covered < best.covered) best = { x: x, y: y, covered: covered };
    });
    g.fillStyle = "rgba(255,255,255,0.85)"; g.fillRect(best.x, best.y, size.w, size.h);
    g.strokeStyle = "#ccc"; g.lineWidth = 1; g.setLineDash([]); g.strokeRect(best.x, best.y, size.w, size.h);
    items.forEach(function (it, i) {
      var x = best.x + PAD, y = best.y + PAD + ROW * i + 11;
      if (it[3] === "box") {
        g.fillStyle = it[1]; g.fillRect(x + 6, y - 10, 12, 11);
        g.strokeStyle = "#999"; g.lineWidth = 1; g.strokeRect(x + 6, y - 10, 12, 11);
      }
      else {
        g.strokeStyle = it[1]; g.lineWidth = 2; g.setLineDash(it[2] || []);
        g.beginPath(); g.moveTo(x, y - 4); g.lineTo(x + 25, y - 4); g.stroke(); g.setLineDash([]);
      }
      g.fillStyle = "#222"; g.textAlign = "left"; g.fillText(it[0], x + 30, y);
    });
  }
  function pixels(box, xr, yr, xs, ys) {  // the points of a curve on the canvas, for legend()
    var out = [];
    for (var i = 0; i < xs.length; i++)
      if (isFinite(ys[i])) out.push([at(xr, box.x, box.w, xs[i]), at(yr, box.y + box.h, -box.h, ys[i])]);
    return out;
  }
  var ZERO = "#e377c2", ZERO_RGB = [227, 119, 194], NONE_RGB = [245, 245, 245];  // exactly 0; no term (k > t)

  function drawHeatmap(res, o) {
    var g = ctx2d("heatmap"), T = res.T, box = { x: 50, y: 20, w: 360, h: 360 }, vals = [];
    for (var i = 0; i < T * T; i++) vals.push(log10(res.dE_ds[i]));
    var r = range(vals, 20), img = g.createImageData(T, T), zeros = 0;
    for (var t = 0; t < T; t++)
      for (var k = 0; k < T; k++) {
        var p = 4 * (t * T + k), v = vals[t * T + k];
        if (k <= t && !isFinite(v)) zeros++;
        var c = k > t ? NONE_RGB : isFinite(v) ? colour((v - r[0]) / (r[1] - r[0])) : ZERO_RGB;
        img.data[p] = c[0]; img.data[p + 1] = c[1]; img.data[p + 2] = c[2]; img.data[p + 3] = 255;
      }
    var off = document.createElement("canvas");
    off.width = T; off.height = T; off.getContext("2d").putImageData(img, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(off, box.x, box.y, box.w, box.h);
    var cw = box.w / T;
    g.strokeStyle = "#e0301e"; g.lineWidth = 1.5;
    g.strokeRect(box.x, box.y + o.t * cw, (o.t + 1) * cw, cw);  // output t's row
    var k0 = Math.max(0, o.t - o.K);
    g.beginPath(); g.moveTo(box.x + k0 * cw, box.y + o.t * cw - 4); g.lineTo(box.x + k0 * cw, box.y + (o.t + 1) * cw + 4); g.stroke();
    axes(g, box, "step k", "output t", [-0.5, T - 0.5], [T - 0.5, -0.5], { x: true, y: true });
    // the key, in the empty triangle k > t (top right): the cells without a colour of the bar
    legend(g, box, [["exactly 0" + (zeros ? " (" + zeros + ")" : ""), ZERO, null, "box"],
                    ["k > t: no term", "rgb(" + NONE_RGB.join(",") + ")", null, "box"]]);
    // colour bar, labelled in log10
    var bar = { x: box.x + box.w + 20, y: box.y, w: 14, h: box.h };
    for (var j = 0; j < bar.h; j++) {
      var cc = colour(1 - j / bar.h);
      g.fillStyle = "rgb(" + cc.map(Math.round).join(",") + ")"; g.fillRect(bar.x, bar.y + j, bar.w, 1);
    }
    g.fillStyle = "#222"; g.textAlign = "left";
    var tb = ticks(r[0], r[1], false);
    tb.values.forEach(function (val) { g.fillText(fmtTick(val, tb.step), bar.x + bar.w + 4, at([r[0], r[1]], bar.y + bar.h, -bar.h, val) + 4); });
    g.save(); g.translate(bar.x + bar.w + 52, bar.y + bar.h / 2); g.rotate(-Math.PI / 2); g.textAlign = "center";
    g.fillText("log10 ||dE_t/ds_k||", 0, 0); g.restore();
  }

  function drawLags(lags, th, o) {
    var g = ctx2d("lags"), box = { x: 60, y: 20, w: 400, h: 300 }, T = lags.mean.length;
    var xs = lags.mean.map(function (_, l) { return l; }), xr = [0, Math.max(T - 1, 1)];
    var mean = lags.mean.map(log10), own = lags.own.map(log10), ownX = own.map(function (_, l) { return l; });
    var bound = th.applies ? xs.map(function (l) { return l * Math.log10(th.growth); }) : [];
    var r = range(mean.concat(own), 30);
    r = [Math.min(r[0], 0) , Math.max(r[1], 0.5)];
    axes(g, box, "lag l = t - k", "log10 ratio", xr, r, { x: true });
    line(g, box, xr, r, xs, mean, "#1f5fbf", 2);
    line(g, box, xr, r, ownX, own, "#e0301e", 1.5);
    var items = [["mean over outputs t", "#1f5fbf"], ["output t = " + o.t, "#e0301e"]];
    var points = pixels(box, xr, r, xs, mean).concat(pixels(box, xr, r, ownX, own));
    if (th.applies) {
      line(g, box, xr, r, xs, bound, "#222", 1.5, [6, 4]);
      items.push(["Pascanu: (lambda_1 gamma)^l", "#222", [6, 4]]);
      points = points.concat(pixels(box, xr, r, xs, bound));
    }
    if (th.envelope) {  // the exact bounds of a diagonal linear recurrence: min|lambda|^l and max|lambda|^l
      var hi = xs.map(function (l) { return l * log10(th.envelope[1]); }), lo = xs.map(function (l) { return l === 0 ? 0 : l * log10(th.envelope[0]); });
      line(g, box, xr, r, xs, hi, "#222", 1.5, [6, 4]);
      line(g, box, xr, r, xs, lo, "#888", 1.5, [6, 4]);
      items.push(["max |lambda|^l", "#222", [6, 4]], ["min |lambda|^l", "#888", [6, 4]]);
      points = points.concat(pixels(box, xr, r, xs, hi), pixels(box, xr, r, xs, lo));
    }
    legend(g, box, items, ["top right", "bottom left", "bottom right", "top left"], points);
  }

  function drawSpectra(spectra, th, o, meta) {
    var g = ctx2d("spectra"), box = { x: 60, y: 24, w: 400, h: 296 }, lagsShown = Object.keys(spectra).map(Number);
    var all = [];
    lagsShown.forEach(function (l) { all = all.concat(spectra[l]); });
    var n = lagsShown.length ? spectra[lagsShown[0]].length : 1, r = range(all, 30), xr = [1, Math.max(n, 2)];
    axes(g, box, "index i of the singular value", "log10 sigma_i", xr, r, { x: true });
    var items = [], points = [];
    lagsShown.forEach(function (l, j) {
      var hue = Math.round(240 - 240 * j / Math.max(1, lagsShown.length - 1)), st = "hsl(" + hue + ",70%,42%)";
      var xs = spectra[l].map(function (_, i) { return i + 1; });
      line(g, box, xr, r, xs, spectra[l], st, 1.8);
      items.push(["lag " + l, st]);
      points = points.concat(pixels(box, xr, r, xs, spectra[l]));
    });
    legend(g, box, items, ["bottom left", "top right", "bottom right", "top left"], points);
    g.fillStyle = "#222"; g.textAlign = "center";
    var which = meta.state.length > 1 ? ", the joint state (" + meta.state.join(", ") + ")" :
      meta.widths[0] > 1 ? ", the state " + meta.state[0] + " (" + meta.widths[0] + "H wide)" : "";
    g.fillText("d state_t / d state_(t-l) at t = " + o.t + which, box.x + box.w / 2, box.y - 6);
    g.textAlign = "left";
  }

  function drawTerms(terms, o, meta) {
    var g = ctx2d("terms"), box = { x: 60, y: 20, w: 820, h: 200 }, n = terms.length;
    var vals = terms.map(log10), r = range(vals, 30), w = box.w / n;
    var items = [["kept by truncation at K = " + o.K, "#1f5fbf", null, "box"], ["lost", "#bbb", null, "box"]];
    if (vals.some(function (v) { return !isFinite(v); })) items.push(["exactly 0 (no bar)", ZERO, null, "box"]);
    // headroom above the tallest bar for the legend, so that it covers none
    var room = legendSize(g, items).h + 12, span = r[1] - r[0];
    r = [r[0] - 0.04 * span, r[1] + 1.04 * span * room / (box.h - room)];  // and the smallest bar seen
    $("terms-title").textContent = "The terms of dE_t/d" + meta.shown + " for the chosen t";
    axes(g, box, "step k (its term of dE_t/d" + meta.shown + "; lag t - k)", "log10 ||term||", [-0.5, n - 0.5], r, { x: true });
    for (var k = 0; k < n; k++) {
      var x = box.x + k * w + (w > 3 ? 0.5 : 0), bw = Math.max(w - 1, 0.5);
      if (!isFinite(vals[k])) { g.fillStyle = ZERO; g.fillRect(x, box.y + box.h - 4, bw, 4); continue; }  // a mark, not a bar
      var hgt = Math.max(0, Math.min(box.h, (vals[k] - r[0]) / (r[1] - r[0]) * box.h));  // below the range: none
      g.fillStyle = o.t - k <= o.K ? "#1f5fbf" : "#bbb";
      g.fillRect(x, box.y + box.h - hgt, bw, hgt);
    }
    legend(g, box, items, ["top left"]);
  }

  function factorsInWords(o, k) {  // the cell's words (engine.js) for term (t, k) of dE_t/dP
    var l = o.t - k, w = E.cellWords(o.cell), P = E.META[o.cell].shown, at = function (s) { return s.replace(/\{k-1\}/g, String(k - 1)); };
    return "term (" + o.t + ", " + k + ") of dE_" + o.t + "/d" + P + " = dE_" + o.t + "/do_" + o.t + " . do/dq . V" +
      (w.first ? " . " + w.first.replace(/\{t\}/g, String(o.t)) : "") + (l > 0 ? " . [" + w.back + "] x " + l : "") + " . " + at(w.local) +
      ": the output's error, through V, back " + l + " step" + (l === 1 ? "" : "s") + w.through + ", times " + at(w.what);
  }

  function writeVerdict(th, lags, o) {
    var text = "<b>" + th.verdict + "</b>: " + esc(th.reason) + ".";
    if (th.applies) text += " lambda_1 = ||W||_2 = " + E.fmt(th.lambda1) + ", rho(W) = " + E.fmt(th.rho) + ", gamma = " + th.gamma + ".";
    $("verdict").innerHTML = text;
  }

  function writeTruncation(m, res, trunc, terms, o) {
    var kept = E.norm(trunc.kept, 0, trunc.kept.length), lost = E.norm(trunc.lost, 0, trunc.lost.length);
    var full = new Float64Array(trunc.kept.length), diff = 0, tot = 0;
    for (var i = 0; i < full.length; i++) full[i] = trunc.kept[i] + trunc.lost[i];
    var P = m.meta.shown, fullN = E.norm(full, 0, full.length), gW = res.grads[P], gK = res.gradsK[P];
    for (var j = 0; j < gW.length; j++) { diff += (gK[j] - gW[j]) * (gK[j] - gW[j]); tot += gW[j] * gW[j]; }
    var first = Math.max(0, o.t - o.K), nKept = o.t - first + 1;
    trunc.summary = { kept: kept, lost: lost, full: fullN, wholeRelError: tot > 0 ? Math.sqrt(diff / tot) : 0 };
    var lines = [
      "Truncation at K = " + o.K + " keeps the steps k = " + first + ".." + o.t + " of output t = " + o.t + ": " + nKept + " of its " + (o.t + 1) + " terms.",
      "||kept|| = " + E.fmt(kept) + ", ||lost|| = " + E.fmt(lost) + ", ||dE_t/d" + P + "|| = " + E.fmt(fullN) +
        "; the window's relative error on dE_t/d" + P + ": " + E.fmt(fullN > 0 ? lost / fullN : 0) + ".",
      "On the whole gradient dE/d" + P + " (every output's window): relative error ||d" + P + "_K - d" + P + "|| / ||d" + P + "|| = " +
        E.fmt(tot > 0 ? Math.sqrt(diff / tot) : 0) + ".",
      esc(factorsInWords(o, o.t)), esc(factorsInWords(o, first)), esc(factorsInWords(o, 0))
    ];
    $("truncation").innerHTML = lines.slice(0, 3).map(function (s) { return "<p>" + s + "</p>"; }).join("");
    $("words").innerHTML = lines.slice(3).map(function (s) { return "<li>" + s + "</li>"; }).join("");
  }

  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

  function start() {  // the cell list: the registry's cells that the engine has, in the registry's order
    E.CELLS.forEach(function (name) {
      var opt = document.createElement("option");
      opt.value = name; opt.textContent = E.META[name].label;
      $("cell").appendChild(opt);
    });
    CONTROLS.forEach(function (id) { $(id).addEventListener("input", update); });
    update(null);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
