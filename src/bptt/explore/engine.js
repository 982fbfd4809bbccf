/* bptt explorer engine: forward pass, backpropagation through time and the per-step decomposition
   of the gradient, in float64, for the registry's cells (bpttCells, written into the page by
   bptt.explore from bptt.cells: each cell's parameters with their shapes and roles, its state,
   settings and options). The library's conventions and names:
     rnn      z_t = U x_t + b + W s_{t-1},  s_t = f(z_t)  (Elman)
     lstm     [i, f, g, o] = U x_t + b + W h_{t-1} + bh  (PyTorch's gate order);  c_t = f c_{t-1} + i g,
              h_t = o tanh(c_t)
     gru      [r, z, n] (PyTorch's reset-after form, or reset_after = false);  h_t = (1 - z) n + z h_{t-1}
     lru      h_t = lambda h_{t-1} + gamma (B x_t) in complex numbers, the state [Re h, Im h] (2H),
              lambda = exp(-exp(nu_log) + i exp(theta_log)), gamma = exp(gamma_log) (1 without it),
              a_t = [B_re x_t, B_im x_t]
     mingru   [z; h~] = U x_t + b, z = sigma(.);  h_t = (1 - z) h_{t-1} + z h~
     minlstm  [f; i; h~] = U x_t + b, f, i = sigma(.);  h_t = (f h_{t-1} + i h~) / (f + i)
     linear   h_t = lam h_{t-1} + B x_t  (lam real, (H,))
     cornn    s = tanh(U x_t + b + W y_{t-1} + Wz z_{t-1}),  z_t = a z_{t-1} + k dt (s - gamma y_{t-1}),
              y_t = y_{t-1} + dt z_t  (a = k = 1 / (1 + dt eps) implicit, else a = 1 - dt eps, k = 1)
     q_t = V s_t + c,  o_t = softmax(q_t),  E = sum_t E_t,  E_t = -log o_t[y_t]  (y_t = -1: not scored)
   The input parameters (role "input") are stacked by rows into U (G H, D), the input biases into b;
   a cell's own parameters (role null: nu_log, lam, ...) get their gradients from its own().
   Matrices are row-major Float64Arrays; error vectors are rows (dE/ds_{t-1} = delta_t W).
   Term (t, k) is step k's part of dE_t/dP; its lag is t - k. dE_ds[t][k] = ||dE_t/ds_k||. */
"use strict";
var bpttEngine = (function () {
  var ACT = {  // f, f' written in the output s = f(z), gamma = max |f'|
    tanh: { f: Math.tanh, df: function (s) { return 1 - s * s; }, gamma: 1 },
    sigmoid: { f: sigmoid, df: function (s) { return s * (1 - s); }, gamma: 0.25 },
    relu: { f: function (z) { return z > 0 ? z : 0; }, df: function (s) { return s > 0 ? 1 : 0; }, gamma: 1 },
    identity: { f: function (z) { return z; }, df: function () { return 1; }, gamma: 1 }
  };

  function sigmoid(z) {  // finite for every z
    var e = Math.exp(-Math.abs(z));
    return z >= 0 ? 1 / (1 + e) : e / (1 + e);
  }

  // --- the hot product: WebAssembly (kernels.wat) when the browser allows it, else the same loop --
  var kernel = null;
  try {
    if (typeof bpttKernels === "string" && typeof WebAssembly === "object") {
      var bin = atob(bpttKernels), bytes = new Uint8Array(bin.length);
      for (var bi = 0; bi < bin.length; bi++) bytes[bi] = bin.charCodeAt(bi);
      kernel = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports;
    }
  } catch (err) { kernel = null; }  // a page served under a policy without 'wasm-unsafe-eval'
  var useKernel = kernel !== null;

  function padded(n) { return (n + 3) & ~3; }  // the product's column count: a multiple of 4

  // zeroed Float64Arrays of the given lengths: in the kernel's memory when it is in use. Each call
  // reuses that memory, so a call's arrays are dead after the next call: nothing returned keeps them.
  function workspace(lengths) {
    if (!useKernel) return lengths.map(function (n) { return new Float64Array(n); });
    var total = 0, offsets = lengths.map(function (n) { var o = total; total += n + (n & 1); return o; });  // 16-byte aligned
    var mem = kernel.memory, need = total * 8 - mem.buffer.byteLength;
    if (need > 0) mem.grow(Math.ceil(need / 65536));
    return lengths.map(function (n, i) { return new Float64Array(mem.buffer, offsets[i] * 8, n).fill(0); });
  }

  // rows r0 .. r0+n-1 of out (row length Q, a multiple of 4) = the same rows of D (row length P)
  // times M (P, Q), all row-major; D and out reach to row r0 + padded(n) - 1 (D's extra rows zero)
  function product(D, M, out, r0, n, P, Q) {
    var nb = (n + 3) >> 2;
    if (useKernel && D.buffer === kernel.memory.buffer && M.buffer === D.buffer && out.buffer === D.buffer) {
      kernel.mm(D.byteOffset + r0 * P * 8, M.byteOffset, out.byteOffset + r0 * Q * 8, nb, P, Q);
      return out;
    }
    for (var r = r0; r < r0 + 4 * nb; r++) {  // sum_p D[r, p] M[p, j] in the order p = 0 .. P-1, as mm does
      var o = r * Q, d = r * P;
      for (var j = 0; j < Q; j++) out[o + j] = 0;
      for (var p = 0; p < P; p++) {
        var x = D[d + p], mp = p * Q;
        for (var j2 = 0; j2 < Q; j2++) out[o + j2] += x * M[mp + j2];
      }
    }
    return out;
  }

  function padColumns(M, rows, cols, out) {  // (rows, cols) into out (rows, padded(cols)), zeros after
    var Q = padded(cols);
    for (var i = 0; i < rows; i++) for (var j = 0; j < cols; j++) out[i * Q + j] = M[i * cols + j];
    return out;
  }

  // --- small linear algebra -----------------------------------------------------------------
  function norm(a, from, n) {
    var s = 0;
    for (var i = from; i < from + n; i++) s += a[i] * a[i];
    return Math.sqrt(s);
  }
  function rowTimes(v, M, rows, cols, out) {  // out (cols) = v (rows) M (rows, cols)
    for (var j = 0; j < cols; j++) out[j] = 0;
    for (var i = 0; i < rows; i++) {
      var vi = v[i];
      if (vi === 0) continue;
      var r = i * cols;
      for (var j2 = 0; j2 < cols; j2++) out[j2] += vi * M[r + j2];
    }
    return out;
  }
  function timesVec(M, rows, cols, v, out, add) {  // out (rows) = M v (+ out when add)
    for (var i = 0; i < rows; i++) {
      var s = add ? out[i] : 0, r = i * cols;
      for (var j = 0; j < cols; j++) s += M[r + j] * v[j];
      out[i] = s;
    }
    return out;
  }
  // ||W||_2: power iteration on W^T W
  function norm2(W, n) {
    var v = new Float64Array(n), w = new Float64Array(n), u = new Float64Array(n), lam = 0;
    for (var i = 0; i < n; i++) v[i] = 1 / Math.sqrt(n) * (1 + 0.01 * Math.sin(i + 1));
    for (var it = 0; it < 300; it++) {
      timesVec(W, n, n, v, u, false);
      rowTimes(u, W, n, n, w);
      var l = norm(w, 0, n);
      if (l === 0) return 0;
      for (var j = 0; j < n; j++) v[j] = w[j] / l;
      if (Math.abs(l - lam) <= 1e-15 * l) { lam = l; break; }
      lam = l;
    }
    return Math.sqrt(lam);
  }

  // rho(W) by Gelfand's formula: ||W^(2^m)||^(1 / 2^m), squaring and rescaling 24 times
  function spectralRadius(W, n) {
    var f = norm(W, 0, n * n);
    if (f === 0) return 0;
    var np = padded(n), ws = workspace([(n + 3) * n, n * np, (n + 3) * np]), A = ws[0], Ap = ws[1], B = ws[2];
    var logScale = Math.log(f), pow = 1;
    for (var i = 0; i < n * n; i++) A[i] = W[i] / f;
    for (var m = 0; m < 24; m++) {
      product(A, padColumns(A, n, n, Ap), B, 0, n, n, np);  // B = A A
      var a = norm(B, 0, n * np);
      if (a === 0) return 0;
      for (var r = 0; r < n; r++) for (var j = 0; j < n; j++) A[r * n + j] = B[r * np + j] / a;
      logScale = 2 * logScale + Math.log(a);
      pow *= 2;
    }
    return Math.exp(logScale / pow);
  }

  // singular values of an (n, n) matrix, largest first: Householder reflections make it bidiagonal
  // (Golub and Kahan), whose singular values are the positive eigenvalues of the (2n, 2n) symmetric
  // tridiagonal with zero diagonal and the bidiagonal's entries interleaved off it (its eigenvalues
  // are +-sigma_i), found by implicit QL; each to a few units in the last place of sigma_1
  function singularValues(M, n) {
    var A = new Float64Array(n * n), big = 0;
    for (var a = 0; a < n * n; a++) big = Math.max(big, Math.abs(M[a]));
    if (!(big > 0) || !isFinite(big)) return new Array(n).fill(big === 0 ? 0 : NaN);
    for (var a2 = 0; a2 < n * n; a2++) A[a2] = M[a2] / big;  // scaled: no overflow in the norms
    var off = new Float64Array(2 * n), v = new Float64Array(n), w = new Float64Array(n);
    for (var k = 0; k < n; k++) {
      off[2 * k] = reflect(A, n, k, true, v, w);                     // zeros below A[k, k]
      if (k < n - 1) off[2 * k + 1] = reflect(A, n, k, false, v, w);  // zeros right of A[k, k+1]
    }
    var ev = tridiagonalEigenvalues(new Float64Array(2 * n), off, 2 * n);
    ev.sort(function (x, y) { return y - x; });
    var out = [];
    for (var j = 0; j < n; j++) out.push(Math.abs(ev[j]) * big);
    return out;
  }

  function hyp(a, b) {  // sqrt(a^2 + b^2) without overflow or underflow on the way
    a = Math.abs(a); b = Math.abs(b);
    if (a < b) { var t = a; a = b; b = t; }
    if (a === 0) return 0;
    var q = b / a;
    return a * Math.sqrt(1 + q * q);
  }

  // the eigenvalues of the symmetric tridiagonal with diagonal d and off-diagonal e (e[i] joins i and
  // i + 1; e[n-1] unused), both overwritten: implicit QL with the shift from each leading 2 x 2
  function tridiagonalEigenvalues(d, e, n) {
    e[n - 1] = 0;
    for (var l = 0; l < n; l++) {
      for (var iter = 0; iter < 100; iter++) {
        var m = l;
        for (; m < n - 1; m++) {  // the first negligible off-diagonal at or after l splits the matrix
          var dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
          if (Math.abs(e[m]) <= 1.1e-16 * dd || Math.abs(e[m]) < 1e-300) break;
        }
        if (m === l) break;
        var g = (d[l + 1] - d[l]) / (2 * e[l]), r = hyp(g, 1);
        g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));  // d[m] - the eigenvalue of the 2 x 2 nearest d[l]
        var s = 1, c = 1, p = 0, i = m - 1, underflow = false;
        for (; i >= l; i--) {  // rotations from the bottom of the block up, chasing the bulge
          var f = s * e[i], b = c * e[i];
          r = hyp(f, g);
          e[i + 1] = r;
          if (r === 0) { d[i + 1] -= p; e[m] = 0; underflow = true; break; }
          s = f / r; c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
        }
        if (underflow) continue;
        d[l] -= p; e[l] = g; e[m] = 0;
      }
    }
    return d;
  }

  // a Householder reflection on A (n, n), row-major: column k below the diagonal (column = true),
  // or row k right of k+1; applied to the rest of A, returns the entry it leaves (+-the norm)
  function reflect(A, n, k, column, v, w) {
    var first = column ? k : k + 1, len = n - first, s = 0, i;
    if (column) for (i = 0; i < len; i++) v[i] = A[(first + i) * n + k];
    else for (i = 0; i < len; i++) v[i] = A[k * n + first + i];
    for (i = 0; i < len; i++) s += v[i] * v[i];
    var alpha = Math.sqrt(s);
    if (alpha === 0) return 0;
    if (v[0] > 0) alpha = -alpha;
    v[0] -= alpha;
    var beta = 0;
    for (i = 0; i < len; i++) beta += v[i] * v[i];
    beta = 2 / beta;
    var j, r, o, x;
    if (column) {  // rows first.., columns k+1..: A -= beta v (v^T A)
      for (j = k + 1; j < n; j++) w[j] = 0;
      for (r = 0; r < len; r++) {
        x = v[r]; o = (first + r) * n;
        for (j = k + 1; j < n; j++) w[j] += x * A[o + j];
      }
      for (j = k + 1; j < n; j++) w[j] *= beta;
      for (r = 0; r < len; r++) {
        x = v[r]; o = (first + r) * n;
        for (j = k + 1; j < n; j++) A[o + j] -= x * w[j];
      }
    } else {  // rows k+1.., columns first..: A -= beta (A v) v^T
      for (r = k + 1; r < n; r++) {
        o = r * n + first; x = 0;
        for (j = 0; j < len; j++) x += A[o + j] * v[j];
        x *= beta;
        for (j = 0; j < len; j++) A[o + j] -= x * v[j];
      }
    }
    return alpha;
  }

  // --- cells: a step forward and its step back, side by side ------------------------------
  // step(m, a, prev) -> {h, c?, cache}; a = U x_t + b (G H,), prev = {h, c?} (h: S = the state's
  //   first entry's width, H or the LRU's 2H; c: its second entry, C wide, the LSTM's c, the coRNN's z)
  // back(m, prev, st, d, out) -> fills out.da (dE/da_t, G H), out.dr (dE/d(W h_{t-1} + bh), or what
  //   own() reads), out.dh (dE/dh_{t-1}, S), out.dc (dE/dc_{t-1}); d = {h: dE/dh_t, c: dE/dc_t}
  // own(m, prev, st, da, dr, g) -> adds one step's gradients of the cell's own parameters into g
  // prepare(m) -> what step and back read, made once per model (the LRU's eigenvalues)
  // init(o, r, draw, D, O) -> {params, V, rho?}: the page's random network from its controls o
  // reason(m) -> {reason, envelope?, growth?}: why the error vanishes or not, for a cell other than
  //   Elman's (growth: a bound on every step's Jacobian's norm, where the cell has one: the coRNN's)
  // words: the factors of term (t, k) of dE_t/dP for the page ("{k-1}" is step k - 1)
  var GATED_WORDS = { first: "ds_{t}/dz_{t}", back: "W . the gates' step back", through: " through W", local: "s_{k-1}",
                      what: "the state s_{k-1} that step k read" };
  var CELLS = {
    rnn: {
      step: function (m, a, prev) {
        var H = m.H, z = timesVec(m.W, H, H, prev.h, Float64Array.from(a), true), s = new Float64Array(H);
        for (var i = 0; i < H; i++) s[i] = m.act.f(z[i]);
        return { h: s, cache: null };
      },
      back: function (m, prev, st, d, out) {  // delta_t = dE/ds_t * f'(z_t); dE/ds_{t-1} = delta_t W
        var H = m.H;
        for (var i = 0; i < H; i++) out.da[i] = out.dr[i] = d.h[i] * m.act.df(st.h[i]);
        rowTimes(out.da, m.W, H, H, out.dh);
      },
      init: function (o, r, draw, D, O) {  // W rescaled to spectral radius rho
        var H = o.H, k = 1 / Math.sqrt(H), U = draw(H * D, o.inputScale / Math.sqrt(D)), V = draw(O * H, k), W;
        if (o.init === "orthogonal") W = orthogonal(H, r);
        else if (o.init === "identity") { W = new Float64Array(H * H); for (var i = 0; i < H; i++) W[i * H + i] = 1; }
        else W = draw(H * H, k);
        var rho0 = spectralRadius(W, H);
        for (var j = 0; j < H * H; j++) W[j] *= o.rho / rho0;
        return { params: { U: U, W: W }, V: V, rho: o.rho };
      },
      words: { first: "ds_{t}/dz_{t}", back: "W . ds/dz = diag(f'(z))", through: " through W", local: "s_{k-1}",
               what: "the state s_{k-1} that step k read" }
    },
    lstm: {
      step: function (m, a, prev) {
        var H = m.H, pre = timesVec(m.W, 4 * H, H, prev.h, Float64Array.from(a), true);
        var c = new Float64Array(H), h = new Float64Array(H), ca = new Float64Array(5 * H);  // i f g o tanh(c)
        for (var j = 0; j < H; j++) {
          var bh = m.bh;
          var i = sigmoid(pre[j] + (bh ? bh[j] : 0)), f = sigmoid(pre[H + j] + (bh ? bh[H + j] : 0));
          var g = Math.tanh(pre[2 * H + j] + (bh ? bh[2 * H + j] : 0)), o = sigmoid(pre[3 * H + j] + (bh ? bh[3 * H + j] : 0));
          c[j] = f * prev.c[j] + i * g;
          var tc = Math.tanh(c[j]);
          h[j] = o * tc;
          ca[j] = i; ca[H + j] = f; ca[2 * H + j] = g; ca[3 * H + j] = o; ca[4 * H + j] = tc;
        }
        return { h: h, c: c, cache: ca };
      },
      back: function (m, prev, st, d, out) {  // dE/dc_{t-1} = dE/dc_t f_t along the cell path
        var H = m.H, ca = st.cache;
        for (var j = 0; j < H; j++) {
          var i = ca[j], f = ca[H + j], g = ca[2 * H + j], o = ca[3 * H + j], tc = ca[4 * H + j];
          var dc = d.c[j] + d.h[j] * o * (1 - tc * tc);
          out.da[j] = dc * g * i * (1 - i);
          out.da[H + j] = dc * prev.c[j] * f * (1 - f);
          out.da[2 * H + j] = dc * i * (1 - g * g);
          out.da[3 * H + j] = d.h[j] * tc * o * (1 - o);
          out.dc[j] = dc * f;
        }
        out.dr.set(out.da);
        rowTimes(out.da, m.W, 4 * H, H, out.dh);
      },
      init: function (o, r, draw, D, O) { return gatedInit(4, o, r, draw, D, O); },
      reason: function (m) { return gatedReason(m, "along the cell state c_k -> c_(k-1), multiplied by the forget gate f_k alone"); },
      words: GATED_WORDS
    },
    gru: {
      step: function (m, a, prev) {
        var H = m.H, W = m.W, bh = m.bh, hp = prev.h, ca = new Float64Array(4 * H), h = new Float64Array(H);
        var rz = timesVec(W, 2 * H, H, hp, new Float64Array(2 * H), false);
        for (var j = 0; j < 2 * H; j++) rz[j] = sigmoid(a[j] + rz[j] + (bh ? bh[j] : 0));
        var Wn = W.subarray(2 * H * H), rec = new Float64Array(H), n;
        if (m.resetAfter) {  // n = tanh(a_n + r * (W_n h + bh_n))
          timesVec(Wn, H, H, hp, rec, false);
          n = new Float64Array(H);
          for (var k = 0; k < H; k++) {
            rec[k] += bh ? bh[2 * H + k] : 0;
            n[k] = Math.tanh(a[2 * H + k] + rz[k] * rec[k]);
          }
        } else {  // n = tanh(a_n + W_n (r * h) + bh_n)
          for (var k2 = 0; k2 < H; k2++) rec[k2] = rz[k2] * hp[k2];
          n = timesVec(Wn, H, H, rec, new Float64Array(H), false);
          for (var k3 = 0; k3 < H; k3++) n[k3] = Math.tanh(a[2 * H + k3] + n[k3] + (bh ? bh[2 * H + k3] : 0));
        }
        for (var l = 0; l < H; l++) {
          var z = rz[H + l];
          h[l] = (1 - z) * n[l] + z * hp[l];
          ca[l] = rz[l]; ca[H + l] = z; ca[2 * H + l] = n[l]; ca[3 * H + l] = rec[l];
        }
        return { h: h, cache: ca };
      },
      back: function (m, prev, st, d, out) {
        var H = m.H, ca = st.cache, hp = prev.h, W = m.W, dh = d.h;
        var dn = out.tmp || (out.tmp = new Float64Array(H));
        for (var j = 0; j < H; j++) {
          var r = ca[j], z = ca[H + j], n = ca[2 * H + j];
          dn[j] = dh[j] * (1 - z) * (1 - n * n);
          out.da[H + j] = dh[j] * (hp[j] - n) * z * (1 - z);
          out.da[2 * H + j] = dn[j];
        }
        if (m.resetAfter) {
          for (var k = 0; k < H; k++) {
            var rr = ca[k], rec = ca[3 * H + k];
            out.da[k] = dn[k] * rec * rr * (1 - rr);
            out.dr[k] = out.da[k]; out.dr[H + k] = out.da[H + k]; out.dr[2 * H + k] = dn[k] * rr;
          }
          rowTimes(out.dr, W, 3 * H, H, out.dh);
          for (var k1 = 0; k1 < H; k1++) out.dh[k1] += dh[k1] * ca[H + k1];
        } else {
          var drec = out.tmp2 || (out.tmp2 = new Float64Array(H));
          rowTimes(dn, W.subarray(2 * H * H), H, H, drec);  // dE/d(r * h_{t-1})
          for (var k2 = 0; k2 < H; k2++) {
            var r2 = ca[k2];
            out.da[k2] = drec[k2] * hp[k2] * r2 * (1 - r2);
            out.dr[k2] = out.da[k2]; out.dr[H + k2] = out.da[H + k2]; out.dr[2 * H + k2] = dn[k2];
          }
          rowTimes(out.dr.subarray(0, 2 * H), W, 2 * H, H, out.dh);
          for (var k3 = 0; k3 < H; k3++) out.dh[k3] += dh[k3] * ca[H + k3] + drec[k3] * ca[k3];
        }
      },
      init: function (o, r, draw, D, O) { return gatedInit(3, o, r, draw, D, O); },
      reason: function (m) { return gatedReason(m, "along the update gate's copy h_k -> h_(k-1), multiplied by the update gate z_k alone"); },
      words: GATED_WORDS
    },
    lru: {  // the state [Re h, Im h] (2H); cache a_t = [B_re x_t, B_im x_t]
      prepare: function (m) {  // lambda = exp(-exp(nu_log)) (cos, sin)(exp(theta_log)), gamma = exp(gamma_log)
        var H = m.H, nu = m.own.nu_log, th = m.own.theta_log, gl = m.own.gamma_log || null;
        m.lr = new Float64Array(H); m.li = new Float64Array(H); m.gam = new Float64Array(H); m.mod = new Float64Array(H);
        for (var j = 0; j < H; j++) {
          var r = Math.exp(-Math.exp(nu[j])), phase = Math.exp(th[j]);
          m.mod[j] = r; m.lr[j] = r * Math.cos(phase); m.li[j] = r * Math.sin(phase); m.gam[j] = gl ? Math.exp(gl[j]) : 1;
        }
      },
      step: function (m, a, prev) {  // h_t = lambda h_{t-1} + gamma a_t, in complex numbers
        var H = m.H, hp = prev.h, h = new Float64Array(2 * H);
        for (var j = 0; j < H; j++) {
          var hr = hp[j], hi = hp[H + j];
          h[j] = m.lr[j] * hr - m.li[j] * hi + m.gam[j] * a[j];
          h[H + j] = m.li[j] * hr + m.lr[j] * hi + m.gam[j] * a[H + j];
        }
        return { h: h, cache: a };
      },
      back: function (m, prev, st, d, out) {  // dE/dh_{t-1} = conj(lambda) dE/dh_t; da = gamma dE/dh_t; dr = dE/dh_t
        var H = m.H, dh = d.h;
        for (var j = 0; j < H; j++) {
          var gr = dh[j], gi = dh[H + j], lr = m.lr[j], li = m.li[j];
          out.da[j] = m.gam[j] * gr; out.da[H + j] = m.gam[j] * gi;
          out.dr[j] = gr; out.dr[H + j] = gi;
          out.dh[j] = lr * gr + li * gi; out.dh[H + j] = lr * gi - li * gr;
        }
      },
      own: function (m, prev, st, da, dr, g) {  // through dE/dRe lambda = Re(dr conj(h_{t-1})), dE/dIm lambda
        var H = m.H, hp = prev.h, a = st.cache, nu = m.own.nu_log, th = m.own.theta_log;
        for (var j = 0; j < H; j++) {
          var gr = dr[j], gi = dr[H + j], hr = hp[j], hi = hp[H + j], lr = m.lr[j], li = m.li[j];
          var dlr = gr * hr + gi * hi, dli = gi * hr - gr * hi;
          g.nu_log[j] += -Math.exp(nu[j]) * (dlr * lr + dli * li);
          g.theta_log[j] += Math.exp(th[j]) * (dli * lr - dlr * li);
          if (g.gamma_log) g.gamma_log[j] += m.gam[j] * (gr * a[j] + gi * a[H + j]);
        }
      },
      init: function (o, r, draw, D, O) {  // the ring r_min <= |lambda| <= r_max (|lambda|^2 uniform), phase on [0, 2 pi]
        var H = o.H, nu = new Float64Array(H), th = new Float64Array(H), gl = new Float64Array(H);
        for (var j = 0; j < H; j++) {
          var r2 = Math.min(Math.max(r.uniform() * (o.rmax * o.rmax - o.rmin * o.rmin) + o.rmin * o.rmin, 1e-12), 1 - 1e-12);
          nu[j] = Math.log(-0.5 * Math.log(r2)); th[j] = Math.log(2 * Math.PI * Math.max(r.uniform(), 1e-12));
          gl[j] = 0.5 * Math.log1p(-r2);  // gamma = sqrt(1 - |lambda|^2)
        }
        var std = o.inputScale / Math.sqrt(2 * D);
        return { params: { nu_log: nu, theta_log: th, B_re: gaussian(r, H * D, std), B_im: gaussian(r, H * D, std), gamma_log: gl },
                 V: uniform(r, O * 2 * H, 1 / Math.sqrt(2 * H)) };
      },
      reason: function (m) { return diagonalReason(m, "conj(lambda)", m.mod, "the units forget"); },
      words: { back: "conj(lambda)", through: ", each multiplying it by conj(lambda)",
               local: "dlambda/dnu_log h_{k-1}", what: "the eigenvalue's derivative and the state h_{k-1} that step k read" }
    },
    mingru: {  // cache [z, h~]
      step: function (m, a, prev) {
        var H = m.H, hp = prev.h, h = new Float64Array(H), ca = new Float64Array(2 * H);
        for (var j = 0; j < H; j++) {
          var z = sigmoid(a[j]), cand = a[H + j];
          h[j] = (1 - z) * hp[j] + z * cand;
          ca[j] = z; ca[H + j] = cand;
        }
        return { h: h, cache: ca };
      },
      back: function (m, prev, st, d, out) {  // dE/dh_{t-1} = dE/dh_t (1 - z_t)
        var H = m.H, ca = st.cache, hp = prev.h, dh = d.h;
        for (var j = 0; j < H; j++) {
          var z = ca[j], cand = ca[H + j];
          out.da[j] = dh[j] * (cand - hp[j]) * z * (1 - z);
          out.da[H + j] = dh[j] * z;
          out.dh[j] = dh[j] * (1 - z);
        }
        out.dr.set(out.da);
      },
      init: function (o, r, draw, D, O) { return plainInit(2, o, r, D, O); },
      reason: function (m) {
        return { reason: "Pascanu's bounds are for Elman cells; the " + m.meta.label + " has no W: its error goes back through each step " +
                 "multiplied by 1 - z_k alone, unit by unit, the update gate read from the input only, a factor between 0 and 1: " +
                 "the error never explodes, and it vanishes where the gates open (z near 1); how fast is measured along the sequence (the lag curves)" };
      },
      words: { back: "diag(1 - z)", through: ", each multiplying it by 1 - z",
               local: "dh_k/da_k . x_k", what: "step k's gate and candidate factors ((h~_k - h_{k-1}) z (1 - z), z) and its input x_k" }
    },
    minlstm: {  // cache [f, i, h~]
      step: function (m, a, prev) {
        var H = m.H, hp = prev.h, h = new Float64Array(H), ca = new Float64Array(3 * H);
        for (var j = 0; j < H; j++) {
          var f = sigmoid(a[j]), i = sigmoid(a[H + j]), cand = a[2 * H + j], s = f + i;
          h[j] = (f * hp[j] + i * cand) / s;
          ca[j] = f; ca[H + j] = i; ca[2 * H + j] = cand;
        }
        return { h: h, cache: ca };
      },
      back: function (m, prev, st, d, out) {  // dE/dh_{t-1} = dE/dh_t f_t / (f_t + i_t)
        var H = m.H, ca = st.cache, hp = prev.h, dh = d.h;
        for (var j = 0; j < H; j++) {
          var f = ca[j], i = ca[H + j], cand = ca[2 * H + j], s = f + i, diff = dh[j] * (hp[j] - cand) / (s * s);
          out.da[j] = diff * i * f * (1 - f);
          out.da[H + j] = -diff * f * i * (1 - i);
          out.da[2 * H + j] = dh[j] * i / s;
          out.dh[j] = dh[j] * f / s;
        }
        out.dr.set(out.da);
      },
      init: function (o, r, draw, D, O) { return plainInit(3, o, r, D, O); },
      reason: function (m) {
        return { reason: "Pascanu's bounds are for Elman cells; the " + m.meta.label + " has no W: its error goes back through each step " +
                 "multiplied by f_k / (f_k + i_k) alone, unit by unit, the normalised forget gate read from the input only, a factor " +
                 "between 0 and 1: the error never explodes, and it vanishes where the input gate outweighs the forget gate; how fast is " +
                 "measured along the sequence (the lag curves)" };
      },
      words: { back: "diag(f / (f + i))", through: ", each multiplying it by f / (f + i)",
               local: "dh_k/da_k . x_k", what: "step k's gate and candidate factors and its input x_k" }
    },
    linear: {  // no cache
      step: function (m, a, prev) {
        var H = m.H, lam = m.own.lam, hp = prev.h, h = new Float64Array(H);
        for (var j = 0; j < H; j++) h[j] = lam[j] * hp[j] + a[j];
        return { h: h, cache: null };
      },
      back: function (m, prev, st, d, out) {  // dE/dh_{t-1} = lam dE/dh_t
        var H = m.H, lam = m.own.lam;
        for (var j = 0; j < H; j++) { out.da[j] = out.dr[j] = d.h[j]; out.dh[j] = lam[j] * d.h[j]; }
      },
      own: function (m, prev, st, da, dr, g) {
        for (var j = 0; j < m.H; j++) g.lam[j] += dr[j] * prev.h[j];
      },
      init: function (o, r, draw, D, O) {  // lam uniform on [r_min, r_max)
        var H = o.H, lam = new Float64Array(H);
        for (var j = 0; j < H; j++) lam[j] = o.rmin + (o.rmax - o.rmin) * r.uniform();
        return { params: { lam: lam, B: gaussian(r, H * D, o.inputScale / Math.sqrt(D)) }, V: uniform(r, O * H, 1 / Math.sqrt(H)) };
      },
      reason: function (m) {
        var mod = m.own.lam.map(Math.abs);
        return diagonalReason(m, "lambda", mod, "the units forget");
      },
      words: { back: "lambda", through: ", each multiplying it by lambda", local: "h_{k-1}",
               what: "the state h_{k-1} that step k read" }
    },
    cornn: {  // the state (y, z): h = y, c = z; cache s = tanh of the pre-activation
      prepare: function (m) {  // z_t = a z_{t-1} + k dt (s - gamma y_{t-1}): a, k by the damping's form
        var st = m.settings;
        m.dt = st.dt; m.gam = st.gamma; m.eps = st.eps;
        m.decay = st.implicit ? 1 / (1 + st.dt * st.eps) : 1 - st.dt * st.eps;
        m.kdt = (st.implicit ? m.decay : 1) * st.dt;
      },
      step: function (m, a, prev) {
        var H = m.H, yp = prev.h, zp = prev.c, y = new Float64Array(H), z = new Float64Array(H);
        var s = timesVec(m.own.Wz, H, H, zp, timesVec(m.W, H, H, yp, Float64Array.from(a), true), true);
        for (var j = 0; j < H; j++) {
          s[j] = Math.tanh(s[j]);
          z[j] = m.decay * zp[j] + m.kdt * (s[j] - m.gam * yp[j]);
          y[j] = yp[j] + m.dt * z[j];
        }
        return { h: y, c: z, cache: s };
      },
      back: function (m, prev, st, d, out) {  // g = dE/dz_t + dt dE/dy_t; da = dr = g k dt (1 - s^2)
        var H = m.H, s = st.cache, g = out.tmp || (out.tmp = new Float64Array(H));
        for (var j = 0; j < H; j++) {
          g[j] = d.c[j] + m.dt * d.h[j];
          out.da[j] = out.dr[j] = g[j] * m.kdt * (1 - s[j] * s[j]);
        }
        rowTimes(out.da, m.W, H, H, out.dh);   // dE/dy_{t-1} = dE/dy_t - k dt gamma g + da W
        rowTimes(out.da, m.own.Wz, H, H, out.dc);  // dE/dz_{t-1} = a g + da Wz
        for (var i = 0; i < H; i++) {
          out.dh[i] += d.h[i] - m.kdt * m.gam * g[i];
          out.dc[i] += m.decay * g[i];
        }
      },
      own: function (m, prev, st, da, dr, g) {  // dWz += dr z_{t-1}^T
        var H = m.H, zp = prev.c, Wz = g.Wz;
        for (var i = 0; i < H; i++) {
          var r = dr[i];
          if (r === 0) continue;
          for (var j = 0; j < H; j++) Wz[i * H + j] += r * zp[j];
        }
      },
      init: function (o, r, draw, D, O) {  // U, W, Wz, b on +-1/sqrt(D + 2H) (the authors'); W and Wz by the initialisation, times rho
        var H = o.H, k = 1 / Math.sqrt(D + 2 * H), U = draw(H * D, o.inputScale * k), W = recurrentBlock(H, k, o, r, draw);
        var Wz = recurrentBlock(H, k, o, r, draw);
        return { params: { U: U, W: W, Wz: Wz, b: draw(H, k) }, V: draw(O * H, 1 / Math.sqrt(H)) };
      },
      reason: function (m) { return cornnReason(m); },
      words: { back: "d(y, z)_k/d(y, z)_(k-1)", through: " through the oscillators' steps (each: the factor 1 along y, a along z, " +
               "W and Wz times dz/dpre)", local: "dz/dpre . y_{k-1}",
               what: "step k's dz_k/dpre_k = dt (1 - s_k^2) (over 1 + dt eps where the damping is implicit) and the state y_{k-1} that step k read" }
    }
  };

  function cellWords(name) { return CELLS[name].words; }
  function blocks(s) { return s === "D" ? 0 : +(s.slice(0, -1) || 1); }  // "4H" -> 4

  // the registry's cells (bpttCells, from bptt.cells) that this engine has a step for, by name:
  // each with G (the rows of its input part a_t, in blocks of H) and shown, the parameter whose
  // terms the page shows: the recurrent one (W), else the cell's first own one, else its input
  var META = {}, ORDER = [];
  (typeof bpttCells === "object" && bpttCells ? bpttCells : []).forEach(function (c) {
    if (!CELLS[c.name]) return;
    var G = 0, first = {};
    c.params.forEach(function (q) {
      if (q[3] === "input") G += blocks(q[1][0]);
      if (first[String(q[3])] === undefined) first[String(q[3])] = q[0];
    });
    META[c.name] = { name: c.name, label: c.label, params: c.params, settings: c.settings, state: c.state, widths: c.widths,
                     options: c.options, pascanu: c.pascanu, G: G, shown: first.recurrent || first["null"] || first.input };
    ORDER.push(c.name);
  });

  // the vector dW's row block multiplies at step k: h_{k-1}, or r_k * h_{k-1} for the GRU's n rows (reset before)
  function recurrentInput(m, tr, k, block) {
    if (m.cell === "gru" && !m.resetAfter && block === 2) return tr.steps[k].cache.subarray(3 * m.H, 4 * m.H);
    return tr.states[k].h;
  }

  // --- model and forward pass ----------------------------------------------------------------
  // p: {cell, H, D, O, params: {name: Float64Array} (the cell's parameters by the library's names,
  // row-major), V (O, S), c, activation, resetAfter}. The input parameters are stacked by rows into
  // U (G H, D) (rows[name] = [first row, rows]), the input biases into b; W and bh are the ones with
  // the roles "recurrent" and "recurrent bias"; own the cell's own ones. S: the state's first width.
  function model(p) {
    var meta = META[p.cell];
    if (!meta) throw new TypeError("unknown cell " + JSON.stringify(p.cell) + ": expected one of " + ORDER.join(", "));
    var H = p.H, params = p.params || {}, U = [], b = [], own = {}, rows = {}, at = { input: 0, "input bias": 0 };
    var m = { cell: meta.name, meta: meta, G: meta.G, H: H, D: p.D, O: p.O, S: meta.widths[0] * H, C: (meta.widths[1] || 0) * H,
              V: p.V, c: p.c || null,
              W: null, bh: null, params: params, act: ACT[p.activation || "tanh"], activation: p.activation || "tanh",
              resetAfter: p.resetAfter !== false };
    meta.params.forEach(function (q) {
      var name = q[0], role = q[3], a = params[name] || null;
      if (role === "input" || role === "input bias") {
        if (!a) { if (role === "input") U.push(null); return; }
        var n = role === "input" ? a.length / p.D : a.length;
        rows[name] = [at[role], n]; at[role] += n;
        (role === "input" ? U : b).push(a);
      } else if (role === "recurrent") m.W = a;
      else if (role === "recurrent bias") m.bh = a;
      else if (a) own[name] = a;
    });
    m.U = stack(U); m.b = b.length ? stack(b) : null; m.own = own; m.rows = rows;
    m.settings = {};  // the cell's settings by the library's names: p.settings's, else the registry's defaults
    Object.keys(meta.settings).forEach(function (k) {
      var v = k === "activation" ? m.activation : k === "reset_after" ? m.resetAfter :
        p.settings && p.settings[k] !== undefined && p.settings[k] !== null ? p.settings[k] : meta.settings[k];
      if (typeof v !== typeof meta.settings[k] || (typeof v === "number" && !isFinite(v)))
        throw new TypeError("the " + meta.name + " cell's " + k + " must be " + (typeof meta.settings[k] === "number" ?
          "a finite number" : "a " + typeof meta.settings[k]) + ", got " + JSON.stringify(v));
      m.settings[k] = v;
    });
    m.impl = CELLS[m.cell];
    if (m.impl.prepare) m.impl.prepare(m);
    return m;
  }

  function stack(parts) {  // Float64Arrays one after the other; null if one is missing
    if (parts.some(function (a) { return !a; })) return null;
    if (parts.length === 1) return parts[0];
    var out = new Float64Array(parts.reduce(function (n, a) { return n + a.length; }, 0)), n = 0;
    parts.forEach(function (a) { out.set(a, n); n += a.length; });
    return out;
  }

  function inputPart(m, x, t) {  // a_t = U x_t + b (G H,): x.ids or x.dense (T, D)
    var GH = m.G * m.H, a = new Float64Array(GH);
    if (x.ids) { for (var i = 0; i < GH; i++) a[i] = m.U[i * m.D + x.ids[t]]; }
    else timesVec(m.U, GH, m.D, x.dense[t], a, false);
    if (m.b) for (var j = 0; j < GH; j++) a[j] += m.b[j];
    return a;
  }

  function forward(m, x, T, h0, c0) {  // states[k] = state before step k (states[0] = h0), steps[k] = after
    var prev = { h: h0 || new Float64Array(m.S), c: m.C ? (c0 || new Float64Array(m.C)) : null };
    var states = [prev], steps = [], Q = [];
    for (var t = 0; t < T; t++) {
      var st = m.impl.step(m, inputPart(m, x, t), prev);
      var q = timesVec(m.V, m.O, m.S, st.h, new Float64Array(m.O), false);
      if (m.c) for (var o = 0; o < m.O; o++) q[o] += m.c[o];
      steps.push(st); states.push(st); Q.push(q);
      prev = st;
    }
    return { states: states, steps: steps, Q: Q, T: T, x: x };
  }

  function outputError(m, Q, y) {  // loss, dQ[t] = o_t - onehot(y_t) (zero where y_t = -1)
    var loss = 0, dQ = [];
    for (var t = 0; t < Q.length; t++) {
      var q = Q[t], mx = -Infinity, sum = 0, d = new Float64Array(m.O);
      if (y[t] >= 0) {
        for (var i = 0; i < m.O; i++) mx = Math.max(mx, q[i]);
        for (var j = 0; j < m.O; j++) sum += Math.exp(q[j] - mx);
        loss += -(q[y[t]] - mx - Math.log(sum));
        for (var k = 0; k < m.O; k++) d[k] = Math.exp(q[k] - mx) / sum;
        d[y[t]] -= 1;
      }
      dQ.push(d);
    }
    return { loss: loss, dQ: dQ };
  }

  function scratch(m) {
    var GH = m.G * m.H;
    return { da: new Float64Array(GH), dr: new Float64Array(GH), dh: new Float64Array(m.S), dc: new Float64Array(m.C || m.H) };
  }

  // --- the decomposition: every output's error, back through every step ------------------------
  // Returns loss, the (T, T) tables dE_ds, dE_dz (||dE_t/da_k||) and, for an LSTM, dE_dc; the full
  // gradients and, with K given, the gradients of the notebook's window (output t reaches t-K..t).
  function decompose(m, x, y, T, h0, c0, K) {  // Elman, LSTM, GRU (reset after), coRNN by their own, faster loops
    if (m.cell === "rnn") return decomposeElman(m, x, y, T, h0, K);
    if (m.cell === "cornn") return decomposeCoRNN(m, x, y, T, h0, c0, K);
    if (m.cell === "lstm" || (m.cell === "gru" && m.resetAfter)) return decomposeGated(m, x, y, T, h0, c0, K);
    var tr = forward(m, x, T, h0, c0), H = m.H, S = m.S, GH = m.G * H, out = outputError(m, tr.Q, y);
    var dE_ds = new Float64Array(T * T), dE_dz = new Float64Array(T * T), dE_dc = m.C ? new Float64Array(T * T) : null;
    var dA = new Float64Array(T * GH), dR = new Float64Array(T * GH);   // sums over outputs, full BPTT
    var window = K === undefined || K === null ? null : K;
    var dAK = window === null ? null : new Float64Array(T * GH), dRK = window === null ? null : new Float64Array(T * GH);
    var gh = [], gc = [], e = new Float64Array(S), s = scratch(m);
    var C = m.C, dh0 = new Float64Array(S), dc0 = new Float64Array(C);
    for (var k = T - 1; k >= 0; k--) {
      rowTimes(out.dQ[k], m.V, m.O, S, e);  // dE_k/ds_k from output k itself
      gh[k] = Float64Array.from(e);
      if (dE_dc) gc[k] = new Float64Array(C);
      var prev = tr.states[k], st = tr.steps[k];
      for (var t = k; t < T; t++) {
        dE_ds[t * T + k] = norm(gh[t], 0, S);
        if (dE_dc) dE_dc[t * T + k] = norm(gc[t], 0, C);
        m.impl.back(m, prev, st, { h: gh[t], c: dE_dc ? gc[t] : null }, s);
        dE_dz[t * T + k] = norm(s.da, 0, GH);
        var base = k * GH, inWindow = window !== null && t - k <= window;
        for (var i = 0; i < GH; i++) {
          dA[base + i] += s.da[i]; dR[base + i] += s.dr[i];
          if (inWindow) { dAK[base + i] += s.da[i]; dRK[base + i] += s.dr[i]; }
        }
        gh[t].set(s.dh);
        if (dE_dc) gc[t].set(s.dc);
      }
    }
    for (var t2 = 0; t2 < T; t2++) {
      for (var j = 0; j < S; j++) dh0[j] += gh[t2][j];
      if (dE_dc) for (var j2 = 0; j2 < C; j2++) dc0[j2] += gc[t2][j2];
    }
    var res = { trace: tr, loss: out.loss, dQ: out.dQ, dE_ds: dE_ds, dE_dz: dE_dz, dE_dc: dE_dc, T: T,
                grads: weightGrads(m, tr, x, out.dQ, dA, dR), h0: dh0, c0: dE_dc ? dc0 : null };
    if (window !== null) res.gradsK = weightGrads(m, tr, x, out.dQ, dAK, dRK);
    return res;
  }

  // the coRNN's step k back for n error rows at once, r0 .. r0+n-1 of Gy, Gz (dE/dy_k, dE/dz_k, rows
  // H long) into dE/dy_{k-1}, dE/dz_{k-1}: g = Gz + dt Gy, D's row = g k dt (1 - s_k^2) (da = dr,
  // left in D for the caller), then Gy - k dt gamma g + D W and a g + D Wz, D [W | Wz] in one
  // product. ws = cornnSpace(m, rows): M = [W | Wz] (H, Q), D (rows + 3, H), R (rows + 3, Q)
  function cornnSpace(m, rows) {
    var H = m.H, Hp = padded(H), Q = 2 * Hp, ws = workspace([H * Q, (rows + 3) * H, (rows + 3) * Q]), M = ws[0];
    for (var i = 0; i < H; i++)
      for (var j = 0; j < H; j++) { M[i * Q + j] = m.W[i * H + j]; M[i * Q + Hp + j] = m.own.Wz[i * H + j]; }
    return { M: M, D: ws[1], R: ws[2], Q: Q, Hp: Hp, fp: new Float64Array(H) };
  }
  function cornnRows(m, tr, k, Gy, Gz, ws, r0, n) {
    var H = m.H, s = tr.steps[k].cache, fp = ws.fp, D = ws.D, R = ws.R, Q = ws.Q, Hp = ws.Hp, c = m.kdt * m.gam;
    for (var j = 0; j < H; j++) fp[j] = m.kdt * (1 - s[j] * s[j]);
    for (var r = r0; r < r0 + n; r++) {
      var o = r * H;
      for (var i = 0; i < H; i++) {
        var g = Gz[o + i] + m.dt * Gy[o + i];
        D[o + i] = g * fp[i];
        Gy[o + i] -= c * g;
        Gz[o + i] = m.decay * g;
      }
    }
    product(D, ws.M, R, r0, n, H, Q);
    for (var r2 = r0; r2 < r0 + n; r2++) {
      var o2 = r2 * H, q = r2 * Q;
      for (var i2 = 0; i2 < H; i2++) { Gy[o2 + i2] += R[q + i2]; Gz[o2 + i2] += R[q + Hp + i2]; }
    }
  }

  // the coRNN's decomposition: every output's errors (dE_t/dy_k, dE_t/dz_k) as the rows of Gy, Gz,
  // all taken back through step k at once by cornnRows
  function decomposeCoRNN(m, x, y, T, h0, c0, K) {
    var tr = forward(m, x, T, h0, c0), H = m.H, out = outputError(m, tr.Q, y), window = K === undefined || K === null ? null : K;
    var dE_ds = new Float64Array(T * T), dE_dz = new Float64Array(T * T), dE_dc = new Float64Array(T * T);
    var ws = cornnSpace(m, T), D = ws.D, Gy = new Float64Array(T * H), Gz = new Float64Array(T * H), e = new Float64Array(H);
    var dA = new Float64Array(T * H), dAK = window === null ? null : new Float64Array(T * H);
    for (var k = T - 1; k >= 0; k--) {
      Gy.set(rowTimes(out.dQ[k], m.V, m.O, H, e), k * H);  // dE_k/dy_k from output k itself; dE_k/dz_k = 0
      for (var t = k; t < T; t++) {
        dE_ds[t * T + k] = norm(Gy, t * H, H); dE_dc[t * T + k] = norm(Gz, t * H, H);
      }
      cornnRows(m, tr, k, Gy, Gz, ws, k, T - k);
      var base = k * H;
      for (var t2 = k; t2 < T; t2++) {
        var o = t2 * H, keep = window !== null && t2 - k <= window;
        dE_dz[t2 * T + k] = norm(D, o, H);
        for (var i = 0; i < H; i++) { dA[base + i] += D[o + i]; if (keep) dAK[base + i] += D[o + i]; }
      }
    }
    var dh0 = new Float64Array(H), dc0 = new Float64Array(H);
    for (var t3 = 0; t3 < T; t3++) for (var j = 0; j < H; j++) { dh0[j] += Gy[t3 * H + j]; dc0[j] += Gz[t3 * H + j]; }
    var res = { trace: tr, loss: out.loss, dQ: out.dQ, dE_ds: dE_ds, dE_dz: dE_dz, dE_dc: dE_dc, T: T,
                grads: weightGrads(m, tr, x, out.dQ, dA, dA), h0: dh0, c0: dc0 };
    if (window !== null) res.gradsK = weightGrads(m, tr, x, out.dQ, dAK, dAK);
    return res;
  }

  // the Elman decomposition with every output's error in one flat (T, H) array: at step k the rows
  // t >= k become delta_t = dE_t/ds_k * f'(z_k), then dE_t/ds_{k-1} = delta_t W, all in one product
  // (G's rows are padded(H) long, the product's layout)
  function decomposeElman(m, x, y, T, h0, K) {
    var tr = forward(m, x, T, h0, null), H = m.H, Hp = padded(H), out = outputError(m, tr.Q, y), df = m.act.df;
    var dE_ds = new Float64Array(T * T), dE_dz = new Float64Array(T * T), window = K === undefined || K === null ? null : K;
    var ws = workspace([H * Hp, (T + 3) * H, (T + 3) * Hp]), Wp = padColumns(m.W, H, H, ws[0]), D = ws[1], G = ws[2];
    var fp = new Float64Array(H), dA = new Float64Array(T * H), dAK = window === null ? null : new Float64Array(T * H);
    var e = new Float64Array(H);
    for (var k = T - 1; k >= 0; k--) {
      G.set(rowTimes(out.dQ[k], m.V, m.O, H, e), k * Hp);  // dE_k/ds_k from output k itself
      var s = tr.steps[k].h, base = k * H;
      for (var i = 0; i < H; i++) fp[i] = df(s[i]);
      for (var t = k; t < T; t++) {
        var r = t * Hp, rd = t * H, gs = 0, ds = 0, keep = window !== null && t - k <= window;
        for (var j = 0; j < H; j++) {
          var g = G[r + j], d = g * fp[j];
          gs += g * g; ds += d * d;
          D[rd + j] = d; dA[base + j] += d;
          if (keep) dAK[base + j] += d;
        }
        dE_ds[t * T + k] = Math.sqrt(gs); dE_dz[t * T + k] = Math.sqrt(ds);
      }
      product(D, Wp, G, k, T - k, H, Hp);
    }
    var dh0 = new Float64Array(H);
    for (var t2 = 0; t2 < T; t2++) for (var j2 = 0; j2 < H; j2++) dh0[j2] += G[t2 * Hp + j2];
    var res = { trace: tr, loss: out.loss, dQ: out.dQ, dE_ds: dE_ds, dE_dz: dE_dz, dE_dc: null, T: T,
                grads: weightGrads(m, tr, x, out.dQ, dA, dA), h0: dh0, c0: null };
    if (window !== null) res.gradsK = weightGrads(m, tr, x, out.dQ, dAK, dAK);
    return res;
  }

  // the same for an LSTM or a GRU (reset after). Step k's gate factors (stepFactors) turn the errors
  // of the state after the step into the gates' errors element by element; the product with W that
  // takes them to h_{k-1} is folded into one (P, H) matrix M_k for the step (P = 2H: rows for h_k's
  // error then c_k's; P = H for a GRU), applied to every output's row at once
  function decomposeGated(m, x, y, T, h0, c0, K) {
    var tr = forward(m, x, T, h0, c0), H = m.H, Hp = padded(H), GH = m.G * H, out = outputError(m, tr.Q, y);
    var lstm = m.cell === "lstm", P = lstm ? 2 * H : H, window = K === undefined || K === null ? null : K;
    var dE_ds = new Float64Array(T * T), dE_dz = new Float64Array(T * T), dE_dc = lstm ? new Float64Array(T * T) : null;
    var ws = workspace([P * Hp, (T + 3) * P, (T + 3) * Hp]), Mk = ws[0], X = ws[1], Gh = ws[2];
    var Gc = new Float64Array(T * H), e = new Float64Array(H), f = stepFactors(H);
    var dA = new Float64Array(T * GH), dR = lstm ? dA : new Float64Array(T * GH);
    var dAK = window === null ? null : new Float64Array(T * GH), dRK = window === null ? null : lstm ? dAK : new Float64Array(T * GH);
    var f1 = f.f1, f2 = f.f2, f3 = f.f3, f4 = f.f4, f5 = f.f5, n1 = new Float64Array(H), n2 = new Float64Array(H);
    var sh = new Float64Array(H), sc = new Float64Array(H), shK = new Float64Array(H), scK = new Float64Array(H);
    for (var k = T - 1; k >= 0; k--) {
      Gh.set(rowTimes(out.dQ[k], m.V, m.O, H, e), k * Hp);  // dE_k/dh_k from output k itself
      if (lstm) Gc.fill(0, k * H, (k + 1) * H);
      stepMatrix(m, tr, k, f, Mk);
      // every gate's error is a factor of the step times dc (LSTM) or dE/dh_k, so the sums over
      // outputs t (all of them, and those within the window) need only the sums of dc and dE/dh_k
      var fg = tr.steps[k].cache.subarray(H, 2 * H), last = window === null ? -1 : Math.min(T - 1, k + window);
      sh.fill(0); sc.fill(0); shK.fill(0); scK.fill(0);
      for (var j = 0; j < H; j++) {
        n1[j] = lstm ? f2[j] * f2[j] + f3[j] * f3[j] + f4[j] * f4[j] : f1[j] * f1[j] * (f2[j] * f2[j] + 1) + f3[j] * f3[j];
        n2[j] = lstm ? f5[j] * f5[j] : 0;
      }
      for (var t = k; t < T; t++) {
        var r = t * Hp, rc = t * H, rx = t * P, gs = 0, cs = 0, as = 0, keep = t <= last;
        if (lstm) {
          for (var i = 0; i < H; i++) {
            var gh = Gh[r + i], gc = Gc[rc + i], dc = gc + gh * f1[i];
            gs += gh * gh; cs += gc * gc; as += dc * dc * n1[i] + gh * gh * n2[i];
            X[rx + i] = gh; X[rx + H + i] = gc;
            Gc[rc + i] = dc * fg[i];
            sh[i] += gh; sc[i] += dc;
          }
          if (keep) for (var i2 = 0; i2 < H; i2++) { var g2 = X[rx + i2]; shK[i2] += g2; scK[i2] += X[rx + H + i2] + g2 * f1[i2]; }
          dE_dc[t * T + k] = Math.sqrt(cs);
        } else {
          for (var i3 = 0; i3 < H; i3++) {
            var g3 = Gh[r + i3];
            gs += g3 * g3; as += g3 * g3 * n1[i3];
            X[rx + i3] = g3;
            sh[i3] += g3;
          }
          if (keep) for (var i4 = 0; i4 < H; i4++) shK[i4] += Gh[r + i4];
        }
        dE_ds[t * T + k] = Math.sqrt(gs); dE_dz[t * T + k] = Math.sqrt(as);
      }
      gateSums(m, f, sh, sc, dA, dR, k);
      if (window !== null) gateSums(m, f, shK, scK, dAK, dRK, k);
      product(X, Mk, Gh, k, T - k, P, Hp);  // dE_t/dh_{k-1} for every output t >= k
    }
    var dh0 = new Float64Array(H), dc0 = new Float64Array(H);
    for (var t2 = 0; t2 < T; t2++) for (var j2 = 0; j2 < H; j2++) { dh0[j2] += Gh[t2 * Hp + j2]; dc0[j2] += Gc[t2 * H + j2]; }
    var res = { trace: tr, loss: out.loss, dQ: out.dQ, dE_ds: dE_ds, dE_dz: dE_dz, dE_dc: dE_dc, T: T,
                grads: weightGrads(m, tr, x, out.dQ, dA, dR), h0: dh0, c0: lstm ? dc0 : null };
    if (window !== null) res.gradsK = weightGrads(m, tr, x, out.dQ, dAK, dRK);
    return res;
  }

  // step k's rows of dA (the gates' errors summed over outputs) and dR (those of the recurrent
  // product) from the sums sh of dE/dh_k and (LSTM) sc of dc
  function gateSums(m, f, sh, sc, dA, dR, k) {
    var H = m.H, GH = m.G * H, base = k * GH;
    for (var i = 0; i < H; i++) {
      if (m.cell === "lstm") {
        dA[base + i] = f.f2[i] * sc[i]; dA[base + H + i] = f.f3[i] * sc[i]; dA[base + 2 * H + i] = f.f4[i] * sc[i];
        dA[base + 3 * H + i] = f.f5[i] * sh[i];
      } else {
        var dn = f.f1[i] * sh[i];
        dA[base + i] = dR[base + i] = f.f2[i] * dn; dA[base + H + i] = dR[base + H + i] = f.f3[i] * sh[i];
        dA[base + 2 * H + i] = dn; dR[base + 2 * H + i] = f.f4[i] * dn;
      }
    }
  }

  function stepFactors(H) {
    return { f1: new Float64Array(H), f2: new Float64Array(H), f3: new Float64Array(H), f4: new Float64Array(H), f5: new Float64Array(H) };
  }

  // step k's gate factors into f, and M_k into M (P rows of padded(H)). LSTM: with dc = dE/dc_k +
  // dE/dh_k f1, the gates' errors are (dc f2, dc f3, dc f4, dE/dh_k f5) and dE/dc_{k-1} = dc f_k, so
  // dE/dh_{k-1} = dE/dh_k (f1 A + B) + dE/dc_k A with A = f2 W_i + f3 W_f + f4 W_g, B = f5 W_o (rows
  // scaled). GRU (reset after): dn = dE/dh_k f1, errors (dn f2, dE/dh_k f3, dn), those of the recurrent
  // product (.., .., dn f4), so dE/dh_{k-1} = dE/dh_k (f1 f2 W_r + f3 W_z + f1 f4 W_n + diag(f5))
  function stepMatrix(m, tr, k, f, M) {
    var H = m.H, Hp = padded(H), W = m.W, HH = H * H, ca = tr.steps[k].cache, hp = tr.states[k].h, cp = tr.states[k].c;
    var f1 = f.f1, f2 = f.f2, f3 = f.f3, f4 = f.f4, f5 = f.f5, lstm = m.cell === "lstm";
    for (var j = 0; j < H; j++) {
      if (lstm) {
        var ig = ca[j], fg = ca[H + j], gg = ca[2 * H + j], og = ca[3 * H + j], tc = ca[4 * H + j];
        f1[j] = og * (1 - tc * tc); f2[j] = gg * ig * (1 - ig); f3[j] = cp[j] * fg * (1 - fg); f4[j] = ig * (1 - gg * gg); f5[j] = tc * og * (1 - og);
      } else {
        var rg = ca[j], zg = ca[H + j], ng = ca[2 * H + j];
        f1[j] = (1 - zg) * (1 - ng * ng); f2[j] = ca[3 * H + j] * rg * (1 - rg); f3[j] = (hp[j] - ng) * zg * (1 - zg); f4[j] = rg; f5[j] = zg;
      }
    }
    for (var r = 0; r < H; r++) {
      var o = r * Hp, w = r * H;
      if (lstm) {
        var o2 = o + H * Hp;
        for (var c = 0; c < H; c++) {
          var a = f2[r] * W[w + c] + f3[r] * W[HH + w + c] + f4[r] * W[2 * HH + w + c];
          M[o2 + c] = a;
          M[o + c] = f1[r] * a + f5[r] * W[3 * HH + w + c];
        }
      } else {
        var u = f1[r] * f2[r], v = f1[r] * f4[r];
        for (var c2 = 0; c2 < H; c2++) M[o + c2] = u * W[w + c2] + f3[r] * W[HH + w + c2] + v * W[2 * HH + w + c2];
        M[o + r] += f5[r];
      }
    }
    return M;
  }

  // dU = sum_k dA_k x_k^T, dW = sum_k dR_k h_{k-1}^T (by row block), db = sum dA, dbh = sum dR,
  // the cell's own parameters from its own() step by step, dV = sum_t dQ_t s_t^T, dc = sum dQ_t;
  // by the library's names (U's rows split among the input parameters, b's among the input biases)
  // (dW as one product, dR^T (G H, T) times the inputs h_{k-1} (T, H), in the kernel's memory: so
  // it runs after the decomposition is done with its own arrays there)
  function weightGrads(m, tr, x, dQ, dA, dR) {
    var H = m.H, S = m.S, Hp = padded(H), G = m.G, GH = G * H, T = tr.T, resetBefore = m.cell === "gru" && !m.resetAfter;
    var gU = new Float64Array(GH * m.D), gb = m.b ? new Float64Array(GH) : null, gW = null, gbh = null, RT = null, In = null, dW = null;
    var g = { V: new Float64Array(m.O * S) };
    if (m.bh) gbh = new Float64Array(GH);
    if (m.c) g.c = new Float64Array(m.O);
    Object.keys(m.own).forEach(function (n) { g[n] = new Float64Array(m.own[n].length); });
    if (m.W) {
      var ws = workspace([(GH + 3) * T, T * Hp, (GH + 3) * Hp]);
      RT = ws[0]; In = ws[1]; dW = ws[2]; gW = new Float64Array(GH * H);
    }
    for (var k = 0; k < T; k++) {
      var base = k * GH;
      if (In) In.set(tr.states[k].h, k * Hp);
      for (var i = 0; i < GH; i++) {
        var a = dA[base + i], r = dR[base + i];
        if (RT) RT[i * T + k] = r;
        if (x.ids) gU[i * m.D + x.ids[k]] += a;
        else for (var d = 0; d < m.D; d++) gU[i * m.D + d] += a * x.dense[k][d];
        if (gb) gb[i] += a;
        if (gbh) gbh[i] += r;
      }
      if (m.impl.own) m.impl.own(m, tr.states[k], tr.steps[k], dA.subarray(base, base + GH), dR.subarray(base, base + GH), g);
      var s = tr.steps[k].h;
      for (var o = 0; o < m.O; o++) {
        var q = dQ[k][o];
        for (var j2 = 0; j2 < S; j2++) g.V[o * S + j2] += q * s[j2];
        if (g.c) g.c[o] += q;
      }
    }
    if (m.W) {
      product(RT, In, dW, 0, GH, T, Hp);
      for (var i2 = 0; i2 < GH; i2++) {
        if (resetBefore && i2 >= 2 * H) {  // the n rows multiply r_k * h_{k-1}
          for (var k2 = 0; k2 < T; k2++) {
            var hin = recurrentInput(m, tr, k2, 2), r2 = RT[i2 * T + k2];
            for (var j3 = 0; j3 < H; j3++) gW[i2 * H + j3] += r2 * hin[j3];
          }
        } else for (var j4 = 0; j4 < H; j4++) gW[i2 * H + j4] = dW[i2 * Hp + j4];
      }
    }
    m.meta.params.forEach(function (q) {
      var name = q[0], role = q[3], at = m.rows[name];
      if (role === "input" && at) g[name] = at[0] === 0 && at[1] * m.D === gU.length ? gU : gU.slice(at[0] * m.D, (at[0] + at[1]) * m.D);
      else if (role === "input bias" && at) g[name] = at[0] === 0 && at[1] === gb.length ? gb : gb.slice(at[0], at[0] + at[1]);
      else if (role === "recurrent") g[name] = gW;
      else if (role === "recurrent bias" && gbh) g[name] = gbh;
    });
    return g;
  }

  // output t's error alone at every step k <= t: rows da_k, dr_k (G H) and the state errors
  function outputErrors(m, res, t) {
    var H = m.H, tr = res.trace, s = scratch(m);
    var da = [], dr = [], gh = rowTimes(res.dQ[t], m.V, m.O, m.S, new Float64Array(m.S)), gc = new Float64Array(H);
    for (var k = t; k >= 0; k--) {
      m.impl.back(m, tr.states[k], tr.steps[k], { h: gh, c: gc }, s);
      da[k] = Float64Array.from(s.da); dr[k] = Float64Array.from(s.dr);
      gh = Float64Array.from(s.dh); gc = Float64Array.from(s.dc);
    }
    return { da: da, dr: dr };
  }

  function roleOf(m, name) {
    for (var i = 0; i < m.meta.params.length; i++) if (m.meta.params[i][0] === name) return m.meta.params[i][3];
    throw new TypeError("the " + m.cell + " cell has no parameter " + name);
  }

  // step k's term of dE_t/d(name), flat in the parameter's shape, from output t's errors da, dr at
  // step k: its rows of da times x_k (an input parameter), its rows of da (an input bias), dr (the
  // recurrent bias), the cell's own() of the step (its own parameters); W's is termNorms' own
  function stepTerm(m, tr, k, da, dr, name) {
    var role = roleOf(m, name), at = m.rows[name], x = tr.x;
    if (role === "input") {
      var D = m.D, out = new Float64Array(at[1] * D);
      for (var i = 0; i < at[1]; i++) {
        var a = da[at[0] + i];
        if (x.ids) out[i * D + x.ids[k]] = a; else for (var d = 0; d < D; d++) out[i * D + d] = a * x.dense[k][d];
      }
      return out;
    }
    if (role === "input bias") return da.slice(at[0], at[0] + at[1]);
    if (role === "recurrent bias") return Float64Array.from(dr);
    var g = {};
    Object.keys(m.own).forEach(function (n) { g[n] = new Float64Array(m.own[n].length); });
    m.impl.own(m, tr.states[k], tr.steps[k], da, dr, g);
    return g[name];
  }

  // ||term_{t,k}||_F of dE_t/dP for k = 0..t, P the parameter the page shows (meta.shown); for W
  // the outer products dr_k h_{k-1}^T by row block
  function termNorms(m, res, t, errs) {
    var H = m.H, out = [], name = m.meta.shown, recurrent = roleOf(m, name) === "recurrent";
    for (var k = 0; k <= t; k++) {
      if (!recurrent) { var term = stepTerm(m, res.trace, k, errs.da[k], errs.dr[k], name); out.push(norm(term, 0, term.length)); continue; }
      var sq = 0;
      for (var blk = 0; blk < m.G; blk++) {
        var a = norm(errs.dr[k], blk * H, H), h = norm(recurrentInput(m, res.trace, k, blk), 0, H);
        sq += a * a * h * h;
      }
      out.push(Math.sqrt(sq));
    }
    return out;
  }

  // dE_t/dP summed over the steps k >= t - K (kept) and k < t - K (lost), each in P's shape (W: (G H, H))
  function truncatedTerms(m, res, t, K, errs) {
    var H = m.H, GH = m.G * H, name = m.meta.shown, n = m.params[name].length;
    var kept = new Float64Array(n), lost = new Float64Array(n), recurrent = roleOf(m, name) === "recurrent";
    for (var k = 0; k <= t; k++) {
      var dst = t - k <= K ? kept : lost, r = errs.dr[k];
      if (!recurrent) {
        var term = stepTerm(m, res.trace, k, errs.da[k], r, name);
        for (var q = 0; q < n; q++) dst[q] += term[q];
        continue;
      }
      for (var i = 0; i < GH; i++) {
        var hin = recurrentInput(m, res.trace, k, Math.floor(i / H)), ri = r[i];
        if (ri === 0) continue;
        for (var j = 0; j < H; j++) dst[i * H + j] += ri * hin[j];
      }
    }
    return { kept: kept, lost: lost };
  }

  // singular values of the state Jacobian product d state_t / d state_{t-l} at each lag in lags
  // (state = s, or (h, c) for an LSTM): the unit errors at state_t carried back l steps
  function jacobianSpectra(m, res, t, lags) {
    var H = m.H, Sh = m.S, S = Sh + m.C, tr = res.trace, s = scratch(m), out = {};
    var rows = [], maxLag = 0;
    lags.forEach(function (l) { if (l <= t) maxLag = Math.max(maxLag, l); });
    var logScale = 0, elman = m.cell === "rnn", Hp = padded(H), R = null, Rd = null, Wp = null, fp = new Float64Array(H);
    if (m.cell === "lstm" || (m.cell === "gru" && m.resetAfter)) return gatedSpectra(m, res, t, lags, maxLag);
    if (m.cell === "cornn") return cornnSpectra(m, res, t, lags, maxLag);
    for (var r = 0; r < S && !elman; r++) { var v = new Float64Array(S); v[r] = 1; rows.push(v); }
    if (elman) {  // R: the H unit errors as rows (padded(H) long), Rd = R f'(z_k)
      var ws = workspace([H * Hp, (H + 3) * H, (H + 3) * Hp]);
      Wp = padColumns(m.W, H, H, ws[0]); Rd = ws[1]; R = ws[2];
      for (var r0 = 0; r0 < H; r0++) R[r0 * Hp + r0] = 1;
    }
    for (var l = 1; l <= maxLag; l++) {
      if (elman) {  // the H unit errors at once: R <- (R * f'(z_k)) W
        var sk = tr.steps[t - l + 1].h, mx = 0;
        for (var i0 = 0; i0 < H; i0++) fp[i0] = m.act.df(sk[i0]);
        for (var a = 0; a < H; a++) for (var a2 = 0; a2 < H; a2++) Rd[a * H + a2] = R[a * Hp + a2] * fp[a2];
        product(Rd, Wp, R, 0, H, H, Hp);
        for (var b = 0; b < H * Hp; b++) mx = Math.max(mx, Math.abs(R[b]));
        if (mx > 0 && (mx > 1e100 || mx < 1e-100)) { for (var c = 0; c < H * Hp; c++) R[c] /= mx; logScale += Math.log10(mx); }
        if (lags.indexOf(l) >= 0) {
          var RM = new Float64Array(H * H);
          for (var rr = 0; rr < H; rr++) RM.set(R.subarray(rr * Hp, rr * Hp + H), rr * H);
          out[l] = singularValues(RM, H).map(function (v) { return v > 0 ? Math.log10(v) + logScale : -Infinity; });
        }
        continue;
      }
      var k = t - l + 1, big = 0;  // step k's backward: from state_k to state_{k-1}
      for (var r2 = 0; r2 < S; r2++) {
        var v2 = rows[r2];
        m.impl.back(m, tr.states[k], tr.steps[k], { h: v2.subarray(0, Sh), c: S > Sh ? v2.subarray(Sh) : null }, s);
        v2.set(s.dh, 0);
        if (S > Sh) v2.set(s.dc, Sh);
        for (var j = 0; j < S; j++) big = Math.max(big, Math.abs(v2[j]));
      }
      if (big > 0 && (big > 1e100 || big < 1e-100)) {  // rescale, keep the log of the factor
        for (var r3 = 0; r3 < S; r3++) for (var j2 = 0; j2 < S; j2++) rows[r3][j2] /= big;
        logScale += Math.log10(big);
      }
      if (lags.indexOf(l) >= 0) {
        var M = new Float64Array(S * S);
        for (var r4 = 0; r4 < S; r4++) M.set(rows[r4], r4 * S);
        out[l] = singularValues(M, S).map(function (v) { return v > 0 ? Math.log10(v) + logScale : -Infinity; });
      }
    }
    return out;  // lag -> log10 singular values, largest first
  }

  // the same for an LSTM or a GRU (reset after): the S unit errors (S = 2H: h then c; or H) as rows
  // [dE/dh, dE/dc], each step's M_k (stepMatrix) taking them to h_{k-1} in one product
  function gatedSpectra(m, res, t, lags, maxLag) {
    var H = m.H, Hp = padded(H), lstm = m.cell === "lstm", S = lstm ? 2 * H : H, P = S, tr = res.trace, out = {};
    var ws = workspace([P * Hp, (S + 3) * P, (S + 3) * Hp]), Mk = ws[0], X = ws[1], Rh = ws[2];
    var Rc = new Float64Array(S * H), f = stepFactors(H), logScale = 0;
    for (var r = 0; r < S; r++) { if (r < H) Rh[r * Hp + r] = 1; else Rc[r * H + r - H] = 1; }
    for (var l = 1; l <= maxLag; l++) {
      var k = t - l + 1, fg = tr.steps[k].cache.subarray(H, 2 * H), big = 0;
      stepMatrix(m, tr, k, f, Mk);
      for (var r2 = 0; r2 < S; r2++)
        for (var j = 0; j < H; j++) {
          var gh = Rh[r2 * Hp + j];
          X[r2 * P + j] = gh;
          if (lstm) { var gc = Rc[r2 * H + j]; X[r2 * P + H + j] = gc; Rc[r2 * H + j] = (gc + gh * f.f1[j]) * fg[j]; }
        }
      product(X, Mk, Rh, 0, S, P, Hp);
      for (var r5 = 0; r5 < S; r5++)
        for (var j5 = 0; j5 < H; j5++) big = Math.max(big, Math.abs(Rh[r5 * Hp + j5]), Math.abs(Rc[r5 * H + j5]));
      if (big > 0 && (big > 1e100 || big < 1e-100)) {  // rescale, keep the log of the factor
        for (var q2 = 0; q2 < S * H; q2++) Rc[q2] /= big;
        for (var q3 = 0; q3 < S * Hp; q3++) Rh[q3] /= big;
        logScale += Math.log10(big);
      }
      if (lags.indexOf(l) >= 0) {
        var M = new Float64Array(S * S);
        for (var r3 = 0; r3 < S; r3++) {
          M.set(Rh.subarray(r3 * Hp, r3 * Hp + H), r3 * S);
          if (lstm) M.set(Rc.subarray(r3 * H, (r3 + 1) * H), r3 * S + H);
        }
        out[l] = singularValues(M, S).map(function (v) { return v > 0 ? Math.log10(v) + logScale : -Infinity; });
      }
    }
    return out;
  }

  // the same for a coRNN: the 2H unit errors of the joint state (y, z) as rows [dE/dy, dE/dz], taken
  // back a step at a time by cornnRows
  function cornnSpectra(m, res, t, lags, maxLag) {
    var H = m.H, S = 2 * H, ws = cornnSpace(m, S), Gy = new Float64Array(S * H), Gz = new Float64Array(S * H), logScale = 0, out = {};
    for (var r = 0; r < H; r++) { Gy[r * H + r] = 1; Gz[(H + r) * H + r] = 1; }
    for (var l = 1; l <= maxLag; l++) {
      cornnRows(m, res.trace, t - l + 1, Gy, Gz, ws, 0, S);
      var big = 0;
      for (var q = 0; q < S * H; q++) big = Math.max(big, Math.abs(Gy[q]), Math.abs(Gz[q]));
      if (big > 0 && (big > 1e100 || big < 1e-100)) {  // rescale, keep the log of the factor
        for (var q2 = 0; q2 < S * H; q2++) { Gy[q2] /= big; Gz[q2] /= big; }
        logScale += Math.log10(big);
      }
      if (lags.indexOf(l) >= 0) {
        var M = new Float64Array(S * S);
        for (var r2 = 0; r2 < S; r2++) { M.set(Gy.subarray(r2 * H, (r2 + 1) * H), r2 * S); M.set(Gz.subarray(r2 * H, (r2 + 1) * H), r2 * S + H); }
        out[l] = singularValues(M, S).map(function (v) { return v > 0 ? Math.log10(v) + logScale : -Infinity; });
      }
    }
    return out;
  }

  // --- seeded random numbers and the weights the controls describe -----------------------------
  function rng(seed) {  // mulberry32, with Box-Muller normals
    var a = seed >>> 0;
    var u = function () {
      a = (a + 0x6D2B79F5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    return { uniform: u, normal: function () { return Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u()); } };
  }

  function orthogonal(n, r) {  // Gram-Schmidt (twice) on the rows of a Gaussian matrix
    var Q = new Float64Array(n * n);
    for (var i = 0; i < n; i++) {
      var v = new Float64Array(n);
      for (var j = 0; j < n; j++) v[j] = r.normal();
      for (var pass = 0; pass < 2; pass++)
        for (var p = 0; p < i; p++) {
          var d = 0;
          for (var j2 = 0; j2 < n; j2++) d += v[j2] * Q[p * n + j2];
          for (var j3 = 0; j3 < n; j3++) v[j3] -= d * Q[p * n + j3];
        }
      var l = norm(v, 0, n);
      for (var j4 = 0; j4 < n; j4++) Q[i * n + j4] = v[j4] / l;
    }
    return Q;
  }

  // the explorer's random network: D = O = vocabulary tokens, the cell's weights by its init (an
  // Elman W rescaled to spectral radius rho; a gated cell's W keeps PyTorch's +-1/sqrt(H) scale,
  // times rho; the LRU's and the linear cell's eigenvalues on the ring r_min..r_max), x and y random ids
  function randomSetup(o) {
    var r = rng(o.seed), D = o.vocab, O = o.vocab;
    var draw = function (n, scale) {  // as the control "initialisation of W" says
      return o.init === "normal" ? gaussian(r, n, scale) : uniform(r, n, scale);
    };
    var net = CELLS[o.cell].init(o, r, draw, D, O);
    var x = new Int32Array(o.T), y = new Int32Array(o.T);
    for (var t = 0; t < o.T; t++) { x[t] = Math.floor(r.uniform() * D); y[t] = Math.floor(r.uniform() * O); }
    var m = model({ cell: o.cell, H: o.H, D: D, O: O, params: net.params, V: net.V, activation: o.activation, settings: o.settings });
    if (net.rho !== undefined) m.rho = net.rho;  // W was rescaled to it
    return { model: m, x: { ids: x }, y: y };
  }

  function uniform(r, n, scale) {  // n numbers uniform on +-scale
    var a = new Float64Array(n);
    for (var i = 0; i < n; i++) a[i] = scale * (2 * r.uniform() - 1);
    return a;
  }
  function gaussian(r, n, std) {
    var a = new Float64Array(n);
    for (var i = 0; i < n; i++) a[i] = std * r.normal();
    return a;
  }

  function recurrentBlock(H, k, o, r, draw) {  // (H, H) by the initialisation (draw's on +-k), times rho
    var block = o.init === "orthogonal" ? orthogonal(H, r) : o.init === "identity" ? null : draw(H * H, k);
    if (block === null) { block = new Float64Array(H * H); for (var d = 0; d < H; d++) block[d * H + d] = 1; }
    for (var e = 0; e < H * H; e++) block[e] *= o.rho;
    return block;
  }

  function gatedInit(G, o, r, draw, D, O) {  // LSTM, GRU: every gate's block of W by the initialisation, times rho
    var H = o.H, k = 1 / Math.sqrt(H), U = draw(G * H * D, o.inputScale * k), V = draw(O * H, k), W = new Float64Array(G * H * H);
    for (var g = 0; g < G; g++) W.set(recurrentBlock(H, k, o, r, draw), g * H * H);
    return { params: { U: U, W: W, b: draw(G * H, k), bh: draw(G * H, k) }, V: V };
  }

  function plainInit(G, o, r, D, O) {  // minGRU, minLSTM: U (G H, D), b and V uniform on +-1/sqrt(H), U times the input scale
    var H = o.H, k = 1 / Math.sqrt(H);
    return { params: { U: uniform(r, G * H * D, o.inputScale * k), b: uniform(r, G * H, k) }, V: uniform(r, O * H, k) };
  }

  function gatedReason(m, route) {
    return { reason: "Pascanu's bounds are for Elman cells; the " + m.meta.label + "'s error also travels " + route +
                     ", a factor up to 1 that no norm of W bounds: what decides is measured along the sequence (see the lag curves)" };
  }

  // a diagonal linear recurrence: the error at lag l is exactly factor^l times the error at t, unit
  // by unit, so its size lies between min|lambda|^l and max|lambda|^l times its size at t
  function diagonalReason(m, factor, mod, forget) {
    var lo = Infinity, hi = 0;
    for (var j = 0; j < mod.length; j++) { lo = Math.min(lo, mod[j]); hi = Math.max(hi, mod[j]); }
    var fate = hi < 1 ? "it vanishes at the rate " + forget + " and never explodes" : hi === 1 ? "along a unit with |lambda| = 1 it keeps its size"
      : "it explodes along the units with |lambda| > 1";
    return { envelope: [lo, hi],
             reason: "Pascanu's bounds are for Elman cells; the " + m.meta.label + " has no W: its error goes back through each step " +
                     "multiplied by " + factor + " alone, unit by unit, so at lag l its size lies between min|lambda|^l and max|lambda|^l " +
                     "times its size at output t (the dashed lines), with |lambda| from " + fmt(lo) + " to " + fmt(hi) + ": " + fate };
  }

  // the coRNN: no factor decides alone; Rusch and Mishra's bound on every step's Jacobian where it holds
  // (the cell's bounds(): implicit damping, gamma > 0, gamma dt < 2 eps)
  function cornnReason(m) {
    var st = m.settings, text = "Pascanu's bounds are for Elman cells; the " + m.meta.label + "'s error goes back through each step " +
      "along y with the factor 1 and along z damped by a = " + fmt(m.decay) + ", while W and Wz enter only times k dt (1 - s^2), k dt = " +
      fmt(m.kdt) + ": what it does is measured along the sequence (the lag curves)";
    if (!(st.implicit && st.gamma > 0 && st.gamma * st.dt < 2 * st.eps))
      return { reason: text + "; the paper's bound needs implicit damping, gamma > 0 and gamma dt < 2 eps" };
    var c = 2 * st.eps - st.gamma * st.dt, w = norm2(m.W, m.H), wz = norm2(m.own.Wz, m.H);
    var excess = st.dt * (w * w / st.gamma + wz * wz) / c, growth = Math.sqrt(1 + excess);
    var g = growth < 1.01 ? "(1 + " + fmt(excess / (growth + 1)) + ")" : fmt(growth);  // sqrt(1 + x) - 1 = x / (sqrt(1 + x) + 1)
    return { growth: growth, reason: text + "; with gamma dt < 2 eps every step's Jacobian has norm at most sqrt(1 + dt (||W||_2^2 / gamma + " +
                     "||Wz||_2^2) / (2 eps - gamma dt)) = " + g + " in the energy norm sqrt(gamma |y|^2 + |z|^2) (Rusch and Mishra): " +
                     "the error, measured in its dual norm, grows at most like " + g + "^l" };
  }

  // --- Pascanu's numbers and the verdict, as bptt.theory gives them ------------------------------
  var EQUAL_TOL = 1e-9;
  function theory(m) {
    if (!m.meta.pascanu) {
      var why = m.impl.reason(m);
      if (why.envelope) {  // a linear time-invariant recurrence: rho(A) = max|lambda| decides, as bptt.theory says
        var hi = why.envelope[1];
        var v = Math.abs(hi - 1) <= EQUAL_TOL ? "neither is guaranteed" : hi < 1 ? "vanishing" : "exploding";
        return { applies: false, verdict: v, reason: why.reason, envelope: why.envelope };
      }
      return { applies: false, verdict: "not bounded by the weights", reason: why.reason, envelope: null,
               stepBound: why.growth === undefined ? null : why.growth };
    }
    var H = m.H, lam = norm2(m.W, H), rho = m.rho === undefined ? spectralRadius(m.W, H) : m.rho, g = m.act.gamma, c = lam * g;
    var head = "lambda_1 gamma = " + fmt(lam) + " x " + g + " = " + fmt(c), one = Math.abs(c - 1) <= EQUAL_TOL;
    var verdict, reason, id = m.activation === "identity";
    if (c < 1 && !one) {
      verdict = "vanishing";
      reason = head + " < 1: the sufficient condition for vanishing holds, so every error shrinks at least as fast as " + fmt(c) + "^(t-k) on its way back, whatever the inputs";
    } else if (id && Math.abs(rho - 1) <= EQUAL_TOL) {
      verdict = "neither is guaranteed";
      reason = "the activation is the identity, so ds_t/ds_k = W^(t-k), and rho(W) = 1: the error along W's leading eigenvectors keeps its size";
    } else if (id && rho > 1) {
      verdict = "exploding";
      reason = "the activation is the identity, so ds_t/ds_k = W^(t-k), and rho(W) = " + fmt(rho) + " > 1: every error with a component along W's leading eigenvector grows like " + fmt(rho) + "^(t-k)";
    } else if (id) {
      verdict = "vanishing";
      reason = "the activation is the identity, so ds_t/ds_k = W^(t-k), and rho(W) = " + fmt(rho) + " < 1: every error shrinks like " + fmt(rho) + "^(t-k) in the long run (it may grow for a few steps first, since " + head + " >= 1)";
    } else {
      verdict = "neither is guaranteed";
      reason = head + " >= 1: the sufficient condition for vanishing fails and the necessary condition for exploding " +
               (c > 1 && !one ? "holds" : "is on its edge") + ", but " + m.activation + " units with f'(z) near 0 can still shrink the error; whether it vanishes or explodes depends on the states the inputs drive the network to";
    }
    return { applies: true, gamma: g, lambda1: lam, rho: rho, growth: c, verdict: verdict, reason: reason };
  }

  function fmt(v) { return Number(v.toPrecision(4)).toString(); }

  return { product: useKernel ? "wasm" : "js", ACT: ACT, META: META, CELLS: ORDER, blocks: blocks, cellWords: cellWords, model: model, forward: forward,
           decompose: decompose, outputErrors: outputErrors, stepTerm: stepTerm,
           termNorms: termNorms, truncatedTerms: truncatedTerms, jacobianSpectra: jacobianSpectra,
           singularValues: singularValues, spectralRadius: spectralRadius, norm2: norm2, norm: norm,
           randomSetup: randomSetup, theory: theory, fmt: fmt };
})();
