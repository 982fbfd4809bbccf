"""bptt's performance suite: `python -m benchmarks` (what `make bench` runs). Not part of the tests.

The parts, each timed in one process with the implementations interleaved round by round (so a
noisy, shared machine slows all of them alike), medians after warm-up, JAX's compilation excluded:

  gradients  one full gradient, bptt vs PyTorch (nn.RNN + Linear + cross_entropy, autograd) vs JAX
             (jit(value_and_grad) over lax.scan), float32 and float64          (gradient.py)
  gated      the same for LSTM and GRU                                         (gated.py)
  modern     LRU, minGRU and minLSTM vs JAX lax.scan, JAX associative_scan and a PyTorch loop,
             and bptt's own scan="parallel" beside its loop                    (modern.py)
  flow       flow(...).dE_ds vs one PyTorch backward pass per output step     (flowtable.py)
  minchar    a min-char-rnn training step vs min-char-rnn's own loop         (minchar.py)
  scaling    time and peak memory against T, H and N beside the matrix-multiply floor (scaling.py)
  diagnose   `bptt diagnose` on a state dict and an input file, and each part of the diagnosis
             (diagnose.py)
  stack      a 2-layer bidirectional LSTM's gradient: bptt fast vs reference vs PyTorch (stacked.py)

Every library gets the same number of threads, 2 unless BENCH_THREADS says otherwise. The
environment variables below are set here, before NumPy, PyTorch or JAX are imported, because
OpenBLAS, OpenMP and XLA read them once at start-up; harness.limit_threads then checks and
enforces the limit at run time (threadpoolctl for BLAS, torch.set_num_threads for PyTorch).
"""
import os

USER_ENV = dict(os.environ)  # the environment as it came, for the peers' scripts run as their users run them
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
# Nothing else is set for PyTorch: its OpenMP threads keep OpenMP's default (spin a little, then
# sleep), as its users get it. OMP_WAIT_POLICY=PASSIVE, set here once, made an LSTM's gradient two
# to three times slower than a plain script's (a wake-up for each step's products); the pause
# before each timed sample (harness.interleaved) keeps spinning threads off the next library's cores
# XLA's CPU client: one intra-op pool of THREADS threads (its default is one per core)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true"
                           f" intra_op_parallelism_threads={THREADS}").strip()
# The memory parts (flow at T = 4096 and 8192, RTRL's growth) measure arrays larger than bptt's
# default element limit, a guard against a mistyped size; the suite raises it as the limit's own
# message tells a user with the memory to do
os.environ.setdefault("BPTT_MAX_ELEMENTS", str(1 << 31))
