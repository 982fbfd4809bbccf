;; The explorer's hot loop in WebAssembly, two float64 lanes at a time (the page's engine.js calls it
;; when the browser allows WebAssembly, and runs the same loop in JavaScript when it does not).
;; kernels.wasm is this file compiled: python scripts/build_wasm.py (a test checks they agree).
;;
;; mm(d, m, out, nb, P, Q): out (4 nb, Q) = D (4 nb, P) M (P, Q), row-major float64 matrices at the
;; byte offsets d, m and out, Q a multiple of 4. Each output is sum_p D[r, p] M[p, j] added in the
;; order p = 0 .. P-1, so the result is the JavaScript loop's to the last bit. Four rows of D and
;; four columns of M at a time: eight accumulators of two lanes.
(module
  (memory (export "memory") 1)
  (func (export "mm") (param $d i32) (param $m i32) (param $out i32) (param $nb i32) (param $P i32) (param $Q i32)
    (local $rs i32) (local $qs i32) (local $rb i32) (local $jb i32) (local $p i32)
    (local $d0 i32) (local $d1 i32) (local $d2 i32) (local $d3 i32) (local $mp i32) (local $o i32)
    (local $w0 v128) (local $w1 v128) (local $x v128)
    (local $a00 v128) (local $a01 v128) (local $a10 v128) (local $a11 v128)
    (local $a20 v128) (local $a21 v128) (local $a30 v128) (local $a31 v128)
    (local.set $rs (i32.shl (local.get $P) (i32.const 3)))  ;; bytes in a row of D
    (local.set $qs (i32.shl (local.get $Q) (i32.const 3)))  ;; bytes in a row of M and of out
    (local.set $rb (i32.const 0))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_u (local.get $rb) (local.get $nb)))
      (local.set $jb (i32.const 0))
      (block $cols_done (loop $cols
        (br_if $cols_done (i32.ge_u (local.get $jb) (local.get $Q)))
        (local.set $d0 (i32.add (local.get $d) (i32.mul (local.get $rb) (i32.shl (local.get $rs) (i32.const 2)))))
        (local.set $d1 (i32.add (local.get $d0) (local.get $rs)))
        (local.set $d2 (i32.add (local.get $d1) (local.get $rs)))
        (local.set $d3 (i32.add (local.get $d2) (local.get $rs)))
        (local.set $mp (i32.add (local.get $m) (i32.shl (local.get $jb) (i32.const 3))))
        (local.set $a00 (v128.const i64x2 0 0)) (local.set $a01 (v128.const i64x2 0 0))
        (local.set $a10 (v128.const i64x2 0 0)) (local.set $a11 (v128.const i64x2 0 0))
        (local.set $a20 (v128.const i64x2 0 0)) (local.set $a21 (v128.const i64x2 0 0))
        (local.set $a30 (v128.const i64x2 0 0)) (local.set $a31 (v128.const i64x2 0 0))
        (local.set $p (local.get $P))
        (block $k_done (loop $k
          (br_if $k_done (i32.eqz (local.get $p)))
          (local.set $w0 (v128.load (local.get $mp)))            ;; M[p, j .. j+1]
          (local.set $w1 (v128.load offset=16 (local.get $mp)))  ;; M[p, j+2 .. j+3]
          (local.set $x (v128.load64_splat (local.get $d0)))     ;; D[r, p] twice
          (local.set $a00 (f64x2.add (local.get $a00) (f64x2.mul (local.get $x) (local.get $w0))))
          (local.set $a01 (f64x2.add (local.get $a01) (f64x2.mul (local.get $x) (local.get $w1))))
          (local.set $x (v128.load64_splat (local.get $d1)))
          (local.set $a10 (f64x2.add (local.get $a10) (f64x2.mul (local.get $x) (local.get $w0))))
          (local.set $a11 (f64x2.add (local.get $a11) (f64x2.mul (local.get $x) (local.get $w1))))
          (local.set $x (v128.load64_splat (local.get $d2)))
          (local.set $a20 (f64x2.add (local.get $a20) (f64x2.mul (local.get $x) (local.get $w0))))
          (local.set $a21 (f64x2.add (local.get $a21) (f64x2.mul (local.get $x) (local.get $w1))))
          (local.set $x (v128.load64_splat (local.get $d3)))
          (local.set $a30 (f64x2.add (local.get $a30) (f64x2.mul (local.get $x) (local.get $w0))))
          (local.set $a31 (f64x2.add (local.get $a31) (f64x2.mul (local.get $x) (local.get $w1))))
          (local.set $d0 (i32.add (local.get $d0) (i32.const 8)))
          (local.set $d1 (i32.add (local.get $d1) (i32.const 8)))
          (local.set $d2 (i32.add (local.get $d2) (i32.const 8)))
          (local.set $d3 (i32.add (local.get $d3) (i32.const 8)))
          (local.set $mp (i32.add (local.get $mp) (local.get $qs)))
          (local.set $p (i32.sub (local.get $p) (i32.const 1)))
          (br $k)))
        (local.set $o (i32.add (local.get $out)
          (i32.add (i32.mul (local.get $rb) (i32.shl (local.get $qs) (i32.const 2))) (i32.shl (local.get $jb) (i32.const 3)))))
        (v128.store (local.get $o) (local.get $a00)) (v128.store offset=16 (local.get $o) (local.get $a01))
        (local.set $o (i32.add (local.get $o) (local.get $qs)))
        (v128.store (local.get $o) (local.get $a10)) (v128.store offset=16 (local.get $o) (local.get $a11))
        (local.set $o (i32.add (local.get $o) (local.get $qs)))
        (v128.store (local.get $o) (local.get $a20)) (v128.store offset=16 (local.get $o) (local.get $a21))
        (local.set $o (i32.add (local.get $o) (local.get $qs)))
        (v128.store (local.get $o) (local.get $a30)) (v128.store offset=16 (local.get $o) (local.get $a31))
        (local.set $jb (i32.add (local.get $jb) (i32.const 4)))
        (br $cols)))
      (local.set $rb (i32.add (local.get $rb) (i32.const 1)))
      (br $rows))))
)
