"""Learning-curve metrics of Chang, Tu & Bergen (2024) (docs/diagnostics.md), vectorised over many
curves that share one evaluation grid x_k = log10(step_k) (step 0 is dropped: log 0 is undefined).

- `fit_sigmoids`: the four-parameter logistic f(x) = a + (b − a) / (1 + exp((m − x)/c)) fitted to y = −surprisal by
  Levenberg–Marquardt least squares (batched numpy; scipy's curve_fit is not available), started from
  a = min y, b = max y, m = mean x, c = 1 as in the reference code, and from a second, data-driven start; the fit
  with the smaller residual is kept (instead of the reference's retry with a loosened tolerance).
- `sigmoid_aoa`: threshold y* = (1 − p)·(−chance) + p·max y (halfway between chance and the best surprisal reached),
  AoA = the x where the fitted sigmoid crosses y*, clipped to [x_1, x_T]; x_T ("never acquired") if the best is no
  better than chance, the fit failed or runs the wrong way, or never reaches y*; x_1 if the whole curve is past y*.
- `smooth`: the "GAM" is a P-spline (Eilers & Marx): 25 cubic B-splines on equally spaced knots over [x_1, x_T],
  a second-order difference penalty λ·‖Dβ‖², λ chosen per curve by generalised cross-validation over 11 values
  10⁻³…10³ (the spec's grid). This replaces pyGAM's LinearGAM (not available); docs/diagnostics.md; the original analysis allows "a cheaper
  spline smoother with GCV". Its λ scale is this basis's, not pyGAM's.
- `gam_aoa`: smoothed curve g on a 1,000-point grid over [x_1, x_T]; threshold (1 − p)·chance + p·min g; AoA = the
  first grid point with g ≤ threshold (x_T and never acquired if min g ≥ chance).
- `forgettability`: Σ_k max(0, g(x_{k+1}) − g(x_k)) over the evaluation grid: the total upward (getting worse)
  movement of the smoothed surprisal curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

P_THRESHOLD = 0.5  # threshold proportion p of both AoA definitions (spec: 0.5)
N_SPLINES = 25  # B-spline basis functions (spec: 25)
LAMBDAS = np.logspace(-3, 3, 11)  # GCV grid (spec: 11 values, 1e-3..1e3)
GRID_POINTS = 1000  # evaluation grid of the GAM AoA (spec: 1000)
CHUNK = 4096  # curves per vectorised batch
LM_ITERATIONS = 200
MIN_SCALE = 1e-3  # |c| floor of the sigmoid, in log10 steps


def logistic(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """theta [..., 4] = (a, b, m, c) broadcast against x [T] -> [..., T]."""
    a, b, m, c = (theta[..., i : i + 1] for i in range(4))
    return a + (b - a) / (1.0 + np.exp(np.clip((m - x) / c, -60, 60)))


def _jacobian(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    a, b, m, c = (theta[:, i : i + 1] for i in range(4))
    z = np.clip((m - x) / c, -60, 60)
    s = 1.0 / (1.0 + np.exp(z))
    ds = s * (1.0 - s)
    return np.stack([1.0 - s, s, -(b - a) * ds / c, (b - a) * ds * (m - x) / c**2], axis=-1)


def _starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The reference start (a = min y, b = max y, m = mean x, c = 1) and a data-driven one (m where y first
    passes halfway, c = a twentieth of the x range), which rescues fits that the first collapses to a step."""
    n = len(y)
    lo, hi = y.min(1), y.max(1)
    halfway = x[np.argmax(y >= ((lo + hi) / 2)[:, None], axis=1)]
    width = max((x[-1] - x[0]) / 20, MIN_SCALE)
    return [np.stack([lo, hi, np.full(n, x.mean()), np.ones(n)], axis=1),
            np.stack([lo, hi, halfway, np.full(n, width)], axis=1)]


def _lm(x: np.ndarray, y: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched Levenberg–Marquardt from `theta`: (theta, residual sum of squares). Curves stop iterating once
    an accepted step improves their cost by less than a relative 1e-10 or their damping blows up."""
    theta = theta.copy()
    mu = np.full(len(y), 1e-2)
    cost = ((logistic(x, theta) - y) ** 2).sum(1)
    active = np.arange(len(y))
    eye = np.eye(4)
    for _ in range(LM_ITERATIONS):
        th, yy = theta[active], y[active]
        jac = _jacobian(x, th)
        jtj = np.swapaxes(jac, 1, 2) @ jac
        grad = (np.swapaxes(jac, 1, 2) @ (logistic(x, th) - yy)[..., None])[..., 0]
        diagonal = np.einsum("npp->np", jtj)
        diagonal = diagonal + 1e-9 * (1.0 + diagonal.max(1, keepdims=True))  # keeps the damped system definite
        damped = jtj + mu[active, None, None] * (diagonal[:, :, None] * eye)
        trial = th - np.linalg.solve(damped, grad[..., None])[..., 0]
        trial[:, 3] = np.where(np.abs(trial[:, 3]) < MIN_SCALE, np.copysign(MIN_SCALE, trial[:, 3]), trial[:, 3])
        new_cost = ((logistic(x, trial) - yy) ** 2).sum(1)
        old_cost = cost[active]
        better = np.isfinite(new_cost) & (new_cost < old_cost)
        done = better & (old_cost - new_cost <= 1e-10 * (1.0 + old_cost))
        theta[active] = np.where(better[:, None], trial, th)
        cost[active] = np.where(better, new_cost, old_cost)
        mu[active] = np.where(better, np.maximum(mu[active] / 3.0, 1e-12), mu[active] * 4.0)
        active = active[~done & (mu[active] <= 1e12)]
        if not len(active):
            break
    return theta, cost


def fit_sigmoids(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares logistic fits of each row of y [N, T] against x [T]: (theta [N, 4], ok [N])."""
    y = np.asarray(y, dtype=np.float64)
    thetas, oks = [], []
    x = np.asarray(x, dtype=np.float64)
    for start in range(0, len(y), CHUNK):
        block = y[start : start + CHUNK]
        fits = [_lm(x, block, theta) for theta in _starts(x, block)]
        costs = np.stack([np.where(np.isfinite(cost), cost, np.inf) for _, cost in fits])
        best = costs.argmin(0)
        theta = np.stack([fit[0] for fit in fits])[best, np.arange(len(block))]
        thetas.append(theta)
        oks.append(np.isfinite(costs.min(0)) & np.all(np.isfinite(theta), axis=1))
    if not thetas:
        return np.zeros((0, 4)), np.zeros(0, dtype=bool)
    return np.concatenate(thetas), np.concatenate(oks)


@dataclass
class AoA:
    x: np.ndarray  # [N] log10 step of acquisition
    never: np.ndarray  # [N] bool: not acquired (AoA set to x_T)


def sigmoid_aoa(x: np.ndarray, surprisal: np.ndarray, chance: float, p: float = P_THRESHOLD) -> AoA:
    """Sigmoid age of acquisition of each surprisal curve [N, T] (bits) on x [T] (log10 step)."""
    y = -np.asarray(surprisal, dtype=np.float64)
    x_first, x_last = float(x[0]), float(x[-1])
    if len(y) == 0:
        return AoA(np.zeros(0), np.zeros(0, dtype=bool))
    theta, ok = fit_sigmoids(x, y)
    a, b, m, c = theta.T
    best = y.max(1)
    threshold = (1 - p) * (-chance) + p * best
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (threshold - a) / (b - a)
        crossing = m - c * np.log(1.0 / ratio - 1.0)
    increasing = (b - a) / c > 0
    always = np.all(y >= threshold[:, None], axis=1)
    never = (best <= -chance) | ~ok | ~increasing | ~(ratio < 1) | ~np.isfinite(ratio)
    never &= ~always
    early = always | (ratio <= 0)
    aoa = np.where(never, x_last, np.where(early, x_first, np.clip(np.nan_to_num(crossing, nan=x_last), x_first, x_last)))
    return AoA(aoa, never)


def bspline_basis(x: np.ndarray, lo: float, hi: float, n_basis: int, degree: int = 3) -> np.ndarray:
    """[len(x), n_basis] cubic B-spline basis on equally spaced knots over [lo, hi] (Cox–de Boor recursion)."""
    inner = n_basis - degree
    h = (hi - lo) / inner if hi > lo else 1.0
    knots = lo + h * np.arange(-degree, inner + degree + 1)
    x = np.clip(np.asarray(x, dtype=np.float64), lo, hi - 1e-12 * max(1.0, abs(hi)))
    basis = ((x[:, None] >= knots[None, :-1]) & (x[:, None] < knots[None, 1:])).astype(np.float64)
    for d in range(1, degree + 1):
        left = (x[:, None] - knots[None, : -d - 1]) / (knots[d:-1] - knots[: -d - 1])
        right = (knots[None, d + 1 :] - x[:, None]) / (knots[d + 1 :] - knots[1:-d])
        basis = left * basis[:, :-1] + right * basis[:, 1:]
    return basis


@dataclass
class Smooth:
    """P-spline fits of many curves on one grid."""

    coef: np.ndarray  # [N, n_basis]
    lam: np.ndarray  # [N] GCV-chosen λ
    lo: float
    hi: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The smoothed curves at x: [N, len(x)]."""
        return self.coef @ bspline_basis(x, self.lo, self.hi, self.coef.shape[1]).T


def smooth(x: np.ndarray, y: np.ndarray) -> Smooth:
    """P-spline smoothing of each row of y [N, T] on x [T], λ by GCV (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    t = len(x)
    n_basis = min(N_SPLINES, max(t, 4))
    basis = bspline_basis(x, float(x[0]), float(x[-1]), n_basis)
    diff = np.diff(np.eye(n_basis), n=2, axis=0)
    btb, penalty = basis.T @ basis, diff.T @ diff
    coefs, lams = np.zeros((len(y), n_basis)), np.zeros(len(y))
    for start in range(0, len(y), CHUNK):
        block = y[start : start + CHUNK]
        bty = basis.T @ block.T  # [n_basis, n]
        best_gcv = np.full(len(block), np.inf)
        for lam in LAMBDAS:
            inverse = np.linalg.pinv(btb + lam * penalty)
            coef = inverse @ bty
            rss = ((basis @ coef - block.T) ** 2).sum(0)
            edf = float(np.trace(inverse @ btb))
            gcv = t * rss / max(t - edf, 1e-6) ** 2
            better = gcv < best_gcv
            best_gcv = np.where(better, gcv, best_gcv)
            coefs[start : start + len(block)][better] = coef.T[better]
            lams[start : start + len(block)][better] = lam
    return Smooth(coefs, lams, float(x[0]), float(x[-1]))


def gam_aoa(fit: Smooth, chance: float, p: float = P_THRESHOLD) -> AoA:
    """Smoothed-curve age of acquisition (log10 step) of each fitted surprisal curve."""
    grid = np.linspace(fit.lo, fit.hi, GRID_POINTS)
    g = fit(grid)
    if len(g) == 0:
        return AoA(np.zeros(0), np.zeros(0, dtype=bool))
    lowest = g.min(1)
    threshold = (1 - p) * chance + p * lowest
    never = lowest >= chance
    first = np.argmax(g <= threshold[:, None], axis=1)
    return AoA(np.where(never, fit.hi, grid[first]), never)


def forgettability(fit: Smooth, x: np.ndarray) -> np.ndarray:
    """Total upward movement (bits) of each smoothed curve between consecutive evaluations x [T]."""
    g = fit(np.asarray(x, dtype=np.float64))
    return np.clip(np.diff(g, axis=1), 0.0, None).sum(1)
