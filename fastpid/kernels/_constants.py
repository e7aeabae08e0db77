"""Settings shared by the Numba kernel (:mod:`fastpid.kernels.broja_ipm`) and
its torch port (:mod:`fastpid.kernels.broja_ipm_torch`): both import them from
here, so the two follow the same iterates.

Numba's on-disk cache is keyed on ``broja_ipm.py`` alone: after editing a
value here, delete ``fastpid/kernels/__pycache__/broja_ipm.*.nb[ic]`` (or
touch ``broja_ipm.py`` with a content change) so the kernel is recompiled."""

STATUS = {0: "converged", 1: "max_iter reached", 2: "stalled at working precision", 3: "numerical failure"}
WGROWTH = 10.0  # largest growth of a block's path weight w per iteration (towards s c / mu)
SBAND = 1e10  # block multipliers s are kept within [sigma mu w/(SBAND c), SBAND sigma mu w/c]
BACKTRACK = 0.8  # step reduction in the line search
LS_TRIALS = 60  # trial steps of the line search (alpha * BACKTRACK**k, k < LS_TRIALS)
ARMIJO = 1e-4  # sufficient decrease of the barrier merit
MAXSTEP = 4.0  # nats: largest change of any f or g in one step
ETA_MIN = 0.95  # fraction to the boundary: eta = max(ETA_MIN, 1 - mu)
JAM = 0.3  # after a step shorter than this, take a pure centering step
FULL_STEP = 0.99  # a step at least this long counts as full (centering floor SIGMA_MIN)
SIGMA_MIN = 0.1  # centering after a full step
SIGMA_DAMPED = 0.3  # centering after a damped step
SIGMA_MAX = 0.9  # largest centering of a corrector step
PROJECT_ROUNDS = 3  # Newton projections of q onto the marginals per iterate
RESTORE_SWEEPS = 20  # alternating-scaling sweeps after the projection
STALL = 15  # iterations without PROGRESS of the certified gap (or of mu)
PROGRESS = 0.99  # progress: a value below PROGRESS times the best so far
CERTIFY = 10.0  # certify iterates once mu <= CERTIFY * tol
START_SLACK = 0.5  # slack of the tightest start constraint per row and per column
REG_START = 1e-14  # first diagonal shift when the scaled Newton matrix is not numerically positive definite
REG_GROWTH = 100.0  # growth of the (cumulative) shift per retry
REG_RETRIES = 7  # regularized retries before a scaled gradient step
FINAL_TARGET = 1e-16  # marginal violation of the last alternating-scaling squeeze of a certified q
FINAL_SWEEPS = 200  # sweeps of that squeeze at most
LABEL_FLOPS = 20000.0  # fixed cost of one label of the structured Newton factor, in flops (the path choice)
SCHUR_PANEL = 256  # rows of a gemm panel of the Schur complement in the block (Schur) Cholesky factor
BLOCK_MIN_ROWS = 30  # Newton matrices with at least this many rows take the block (Schur) Cholesky factor

