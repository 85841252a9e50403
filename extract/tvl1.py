"""Dual TV-L1 optical flow in PyTorch: many frame pairs at once, the same code on CPU and CUDA.

The duality-based TV-L1 of Zach, Pock and Bischof (DAGM 2007) in the formulation of Sanchez Perez,
Meinhardt-Llopis and Facciolo (IPOL 2013), step for step as OpenCV's ``DualTVL1OpticalFlow``
computes it, so that fields match the ``tvl1`` method (and TSN's flow weights see the same input):

* a pyramid of ``nscales`` levels, each ``scale_step`` times the one above (bilinear, no
  smoothing, sizes rounded), solved coarse to fine; the flow is upsampled bilinearly and divided
  by ``scale_step`` between levels;
* per level ``warps`` warpings: the second image and its centred gradient sampled at ``x + u``
  (bicubic, zero outside the image), the data term linearised around that flow;
* per warping up to ``outer_iterations`` times: a median filter on ``u``, then up to
  ``inner_iterations`` of: thresholding step (``v``), primal step (``u = v + theta div p``),
  dual step (``p``); a pair stops once the squared change of ``u`` summed over the image falls
  under ``epsilon^2 * pixels`` (every pair of a batch keeps its own stopping point).

Tensors are ``(B, C, H, W)`` float32: ``C`` is 1 for images, 2 for the flow (3 with ``gamma``,
the illumination term). Intensities are 0..255, as OpenCV converts uint8 frames.
"""
from __future__ import annotations

import contextlib
from typing import List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from tapos.data.options import OptionError, apply_options

from .flow_methods import FlowMethod, register_flow

# OpenCV's DualTVL1 defaults (cv2.optflow.DualTVL1OpticalFlow_create()); its setter names in [].
DEFAULTS = {
    "tau": 0.25,                 # [Tau] time step of the dual; the scheme is stable for tau <= 0.25
    "lambda": 0.15,              # [Lambda] weight of the data term (smaller: smoother flow)
    "theta": 0.3,                # [Theta] coupling of u and v in the splitting (smaller: tighter)
    "gamma": 0.0,                # [Gamma] weight of the illumination-change term (0: off)
    "nscales": 5,                # [ScalesNumber] pyramid levels (fewer where a level would be < 16 px)
    "scale_step": 0.8,           # [ScaleStep] size ratio of consecutive levels
    "warps": 5,                  # [WarpingsNumber] re-linearisations of the data term per level
    "epsilon": 0.01,             # [Epsilon] stop when the mean squared update of u is < epsilon^2
    "inner_iterations": 30,      # [InnerIterations] iterations between two median filterings
    "outer_iterations": 10,      # [OuterIterations] median filterings per warping
    "median_filtering": 5,       # [MedianFiltering] median filter size on u (1: none; odd)
    "interpolation": "bicubic",  # warping: bicubic (OpenCV's) or bilinear (faster, not OpenCV's)
}
INTERPOLATIONS = ("bicubic", "bilinear")
MIN_LEVEL = 16       # OpenCV stops the pyramid before a level narrower or lower than this
FLT_EPSILON = float(np.finfo(np.float32).eps)  # OpenCV's floor on |grad I1|^2 in the thresholding step


def check_options(options: Optional[Mapping] = None) -> dict:
    """``DEFAULTS`` with ``options`` applied, checked (an ``OptionError`` in one line)."""
    o = apply_options(DEFAULTS, options, "tvl1-torch")
    positive = ("tau", "lambda", "theta")
    counts = ("nscales", "warps", "inner_iterations", "outer_iterations")
    bad = [f"{k}={o[k]!r} (must be > 0)" for k in positive if not _number(o[k]) or not o[k] > 0]
    bad += [f"{k}={o[k]!r} (must be an integer >= 1)" for k in counts if not _integer(o[k]) or o[k] < 1]
    if not _number(o["gamma"]) or o["gamma"] < 0:
        bad.append(f"gamma={o['gamma']!r} (must be >= 0)")
    if not _number(o["epsilon"]) or o["epsilon"] < 0:
        bad.append(f"epsilon={o['epsilon']!r} (must be >= 0)")
    if not _number(o["scale_step"]) or not 0 < o["scale_step"] < 1:
        bad.append(f"scale_step={o['scale_step']!r} (must be in (0, 1))")
    m = o["median_filtering"]
    if not _integer(m) or m < 0 or (m > 1 and m % 2 == 0):
        bad.append(f"median_filtering={m!r} (must be 0, 1 or an odd size)")
    if o["interpolation"] not in INTERPOLATIONS:
        bad.append(f"interpolation={o['interpolation']!r} (must be one of {', '.join(INTERPOLATIONS)})")
    if bad:
        raise OptionError(f"tvl1-torch: bad option(s) {'; '.join(bad)}")
    return o


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- image operations as OpenCV does them -------------------------------------------------------
def _axis(n_in: int, n_out: int, scale: float, device):
    """Source indices and weights of OpenCV's bilinear resize along one axis: output ``x`` reads
    ``(x + 0.5) / scale - 0.5``; outside ``[0, n_in - 1]`` it takes the edge pixel."""
    x = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) / scale - 0.5
    x0 = torch.floor(x)
    frac = (x - x0).float()
    x0 = x0.long()
    frac = torch.where((x0 < 0) | (x0 >= n_in - 1), 0.0, frac)
    x0 = x0.clamp(0, n_in - 1)
    return x0, (x0 + 1).clamp(max=n_in - 1), frac


def resize(x: torch.Tensor, size, scale=None) -> torch.Tensor:
    """Bilinear resize of ``(..., H, W)`` to ``size = (h, w)``, rows then columns as OpenCV's
    ``INTER_LINEAR`` (no anti-aliasing). ``scale``: OpenCV's ``fx = fy`` when the size came from it
    (the coordinate map uses it, not the rounded size ratio)."""
    (h_in, w_in), (h, w) = x.shape[-2:], size
    sy, sx = (scale, scale) if scale else (h / h_in, w / w_in)
    i0, i1, f = _axis(w_in, w, sx, x.device)
    x = x[..., i0] * (1 - f) + x[..., i1] * f
    j0, j1, g = _axis(h_in, h, sy, x.device)
    g = g[:, None]
    return x[..., j0, :] * (1 - g) + x[..., j1, :] * g


def pyramid(images: torch.Tensor, nscales: int, scale_step: float) -> List[torch.Tensor]:
    """Finest first; each level resized from the one above (OpenCV's sizes: rounded products)."""
    levels = [images]
    for _ in range(1, nscales):
        h, w = levels[-1].shape[-2:]
        size = (int(round(h * scale_step)), int(round(w * scale_step)))
        if min(size) < MIN_LEVEL:
            break
        levels.append(resize(levels[-1], size, scale_step))
    return levels


def centered_gradient(x: torch.Tensor):
    """Central differences / 2; at the borders half the one-sided difference (edge replicated)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]), 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])


def forward_gradient(u: torch.Tensor):
    """Forward differences, 0 on the last column (x) and the last row (y)."""
    p = F.pad(u, (0, 1, 0, 1), mode="replicate")
    return p[..., :-1, 1:] - p[..., :-1, :-1], p[..., 1:, :-1] - p[..., :-1, :-1]


def divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward differences (the adjoint of ``-forward_gradient``): zero before the first row/column."""
    return (px - F.pad(px, (1, 0))[..., :-1]) + (py - F.pad(py, (0, 0, 1, 0))[..., :-1, :])


def _exchange(v: list, i: int, j: int) -> None:
    """Compare-exchange: afterwards ``v[i] <= v[j]`` element-wise."""
    v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])


def _sort(v: list) -> list:
    """Sorts a list of tensors element-wise (odd-even transposition: ``len(v)`` rounds of exchanges)."""
    for r in range(len(v)):
        for i in range(r % 2, len(v) - 1, 2):
            _exchange(v, i, i + 1)
    return v


def _select_median(v: list) -> torch.Tensor:
    """Element-wise median of an odd number of tensors by forgetful selection: hold half of them
    plus one, drop the smallest and the largest, take in the next, until one is left."""
    keep = len(v) // 2 + 2
    work, rest = list(v[:keep]), list(v[keep:])
    while len(work) > 1:
        m = len(work)
        for i in range(1, m):
            _exchange(work, 0, i)
        for i in range(1, m - 1):
            _exchange(work, i, m - 1)
        work = work[1:m - 1] + rest[:1]
        rest = rest[1:]
    return work[0]


def median_filter(u: torch.Tensor, size: int) -> torch.Tensor:
    """``size x size`` median per channel, edges replicated (OpenCV's ``medianBlur``).

    A sorting network of element-wise min/max over shifted views (torch's median over unfolded
    windows is several times slower): sort each window column, then each row of the column-sorted
    window (it stays column-sorted). Entry ``(i, j)`` is then at least ``(i+1)(j+1)`` and at most
    ``k^2 - (k-i)(k-j) + 1`` in rank; the entries that cannot be the median are as many below as
    above it, so the median is the median of the rest (13 of 25 for a 5 x 5 window)."""
    k, r = size, size // 2
    h, w = u.shape[-2:]
    padded = F.pad(u, (r, r, r, r), mode="replicate")
    cols = _sort([padded[..., i:i + h, :] for i in range(k)])
    rows = [_sort([c[..., j:j + w] for j in range(k)]) for c in cols]
    mid = (k * k + 1) // 2
    return _select_median([rows[i][j] for i in range(k) for j in range(k)
                           if (i + 1) * (j + 1) <= mid and k * k - (k - i) * (k - j) + 1 >= mid])


def _taps(x: torch.Tensor, mode: str):
    """Integer positions and weights of the interpolation taps around ``x``: bilinear, or Keys'
    cubic with a = -0.75 (OpenCV's and torch's bicubic)."""
    x0 = torch.floor(x)
    f = x - x0
    if mode == "bilinear":
        return x0, [(0, 1 - f), (1, f)]
    a = -0.75
    near = lambda d: ((a + 2) * d - (a + 3)) * d * d + 1  # noqa: E731  |d| <= 1
    far = lambda d: ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # noqa: E731  1 < |d| < 2
    return x0, [(-1, far(1 + f)), (0, near(f)), (1, near(1 - f)), (2, far(2 - f))]


def warp(images: torch.Tensor, flow: torch.Tensor, mode: str) -> torch.Tensor:
    """``images (B, C, H, W)`` sampled at ``x + flow``; taps outside the image read 0 (OpenCV's
    ``remap`` with its default constant border). Gathered by hand rather than with ``grid_sample``,
    whose normalised coordinates are off integer positions by float rounding: a zero flow must
    return the image exactly, or identical frames get a nonzero flow."""
    b, c, h, w = images.shape
    x = torch.arange(w, dtype=flow.dtype, device=flow.device) + flow[:, 0]
    y = torch.arange(h, dtype=flow.dtype, device=flow.device)[:, None] + flow[:, 1]
    x0, wx = _taps(x, mode)
    y0, wy = _taps(y, mode)
    flat = images.reshape(b, c, h * w)
    out = torch.zeros_like(images)
    for dy, weight_y in wy:
        row = y0 + dy
        inside_y = (row >= 0) & (row < h)
        row = row.clamp(0, h - 1).long() * w
        for dx, weight_x in wx:
            col = x0 + dx
            inside = inside_y & (col >= 0) & (col < w)
            index = (row + col.clamp(0, w - 1).long()).reshape(b, 1, h * w).expand(b, c, h * w)
            weight = torch.where(inside, weight_y * weight_x, 0.0)
            out += weight[:, None] * flat.gather(2, index).reshape(b, c, h, w)
    return out


# -- the solver ---------------------------------------------------------------------------------
def threshold(u, ig, inv_grad, rho_c, l_t):
    """The thresholding step: ``v`` minimising the linearised L1 data term plus ``|u - v|^2 / 2 theta``
    pixel by pixel. ``ig``: the data term's gradient in u (I1x, I1y and gamma); ``rho_c``: its value
    at ``u = 0``; ``inv_grad``: ``1 / max(|grad I1|^2, FLT_EPSILON)``.

    OpenCV's three cases (``rho < -l_t g``: step ``l_t``; ``rho > l_t g``: ``-l_t``; else
    ``-rho / g``) are one clamp of ``-rho / g``. They differ only where ``0 < g <= FLT_EPSILON``
    (OpenCV steps 0 or +-l_t there), where the step moves u by under ``l_t sqrt(FLT_EPSILON)``,
    2e-5 px."""
    rho = rho_c + (ig * u).sum(dim=1, keepdim=True)
    return u + (rho * -inv_grad).clamp(-l_t, l_t) * ig


def iteration(u, px, py, ig, inv_grad, rho_c, l_t: float, theta: float, taut: float):
    """One inner iteration: thresholding, primal and dual steps. Returns the new ``u, px, py`` and
    each pair's squared change of ``u``."""
    v = threshold(u, ig, inv_grad, rho_c, l_t)
    u_new = v + theta * divergence(px, py)
    change = (u_new - u).square().sum(dim=(1, 2, 3))
    ux, uy = forward_gradient(u_new)
    norm = 1.0 + taut * torch.hypot(ux, uy)  # the projection onto |p| <= 1, Chambolle's semi-implicit form
    return u_new, (px + taut * ux) / norm, (py + taut * uy) / norm, change


def _keep(active, new, old):
    """``new`` for the pairs still iterating, ``old`` for those that stopped (None: all iterate)."""
    return new if active is None else torch.where(active[:, None, None, None], new, old)


class TVL1:
    """Dual TV-L1 on batches of pairs: ``TVL1(options, device)(I0, I1)`` -> ``(B, 2, H, W)``;
    :meth:`sequence` gives the fields between consecutive frames of ``(n, H, W)`` uint8 frames.

    ``threads``: torch's CPU threads while solving (set for the calling thread only, then put
    back; None: as they are). The operations are small, and on a loaded machine OpenMP threads
    waiting on each other cost more than they save. ``compile``: run the inner iteration and the
    median filter through ``torch.compile`` (fusing their ~30 and ~200 operations; the first calls
    compile). ``check_every``: inner iterations between tests of whether every pair has stopped
    (each test waits for the device; free on CPU)."""

    def __init__(self, options: Optional[Mapping] = None, device="cpu", compile: bool = False,
                 check_every: Optional[int] = None, threads: Optional[int] = None):
        self.options = check_options(options)
        self.device = torch.device(device)
        self.threads = threads if self.device.type == "cpu" else None
        self.check_every = check_every or (1 if self.device.type == "cpu" else 10)
        # shapes change with the level and as pairs stop: let torch.compile make them dynamic
        self._iteration = torch.compile(iteration) if compile else iteration
        self._median = torch.compile(median_filter) if compile else median_filter

    @torch.no_grad()
    def __call__(self, i0: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
        """``i0, i1 (B, H, W)`` (or ``(B, 1, H, W)``), 0..255 -> flow ``(B, 2, H, W)`` float32."""
        i0, i1 = (self._as_batch(t) for t in (i0, i1))
        if i0.shape != i1.shape:
            raise ValueError(f"tvl1-torch: image shapes differ: {tuple(i0.shape)} and {tuple(i1.shape)}")
        with self._threads():
            return self._solve(pyramid(i0, self.options["nscales"], self.options["scale_step"]),
                               pyramid(i1, self.options["nscales"], self.options["scale_step"]))

    @torch.no_grad()
    def sequence(self, frames: np.ndarray) -> np.ndarray:
        """``frames (n, H, W)`` uint8 -> ``(n - 1, H, W, 2)`` float32 fields ``t -> t+1``: frames go to
        the device once, one pyramid serves both images of each pair."""
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise ValueError(f"tvl1-torch: expected (n, H, W) uint8 frames, got {frames.dtype} {frames.shape}")
        if len(frames) < 2:
            return np.empty((0, *frames.shape[1:], 2), np.float32)
        o = self.options
        with self._threads():
            images = self._as_batch(torch.from_numpy(frames.astype(np.float32)))
            levels = pyramid(images, o["nscales"], o["scale_step"])
            flow = self._solve([lv[:-1] for lv in levels], [lv[1:] for lv in levels])
        return flow.permute(0, 2, 3, 1).cpu().numpy()

    @contextlib.contextmanager
    def _threads(self):
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            if self.threads:
                torch.set_num_threads(before)

    def _as_batch(self, t) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.ndim == 3:
            t = t[:, None]
        if t.ndim != 4 or t.shape[1] != 1 or min(t.shape[-2:]) < 3:
            raise ValueError(f"tvl1-torch: expected (B, H, W) images of at least 3x3 pixels, got {tuple(t.shape)}")
        return t.to(self.device, torch.float32)

    def _solve(self, i0s: List[torch.Tensor], i1s: List[torch.Tensor]) -> torch.Tensor:
        """Coarse to fine over the pyramids (finest first in the lists)."""
        o = self.options
        channels = 3 if o["gamma"] else 2  # u3 models brightness change; it is not scaled between levels
        coarsest = i0s[-1]
        u = coarsest.new_zeros((coarsest.shape[0], channels, *coarsest.shape[-2:]))
        for s in range(len(i0s) - 1, -1, -1):
            u = self._level(i0s[s], i1s[s], u)
            if s:
                u = resize(u, i0s[s - 1].shape[-2:])
                u[:, :2] *= 1.0 / o["scale_step"]  # as OpenCV: times the inverse
        return u[:, :2]

    def _level(self, i0, i1, u):
        o = self.options
        l_t, taut = o["lambda"] * o["theta"], o["tau"] / o["theta"]
        stop = o["epsilon"] ** 2 * i0.shape[-2] * i0.shape[-1]
        i1x, i1y = centered_gradient(i1)
        sources = torch.cat([i1, i1x, i1y], dim=1)  # warped together: the taps are found once
        px, py = torch.zeros_like(u), torch.zeros_like(u)
        for _ in range(o["warps"]):
            w = warp(sources, u[:, :2], o["interpolation"])
            i1w, ix, iy = w[:, :1], w[:, 1:2], w[:, 2:3]
            inv_grad = 1.0 / (ix * ix + iy * iy).clamp_min(FLT_EPSILON)
            rho_c = i1w - ix * u[:, :1] - iy * u[:, 1:2] - i0
            ig = torch.cat([ix, iy] + ([torch.full_like(ix, o["gamma"])] if o["gamma"] else []), dim=1)
            u, px, py = self._warping(u, px, py, ig, inv_grad, rho_c, l_t, taut, stop)
        return u

    def _warping(self, u, px, py, ig, inv_grad, rho_c, l_t, taut, stop):
        """The outer and inner loops of one warping. A pair stops when its change falls under
        ``stop``: its ``u`` and ``p`` are kept from then on (masked until the next check), and at
        each check the pairs that stopped leave the working set, so a batch costs what its pairs
        need rather than what its slowest needs."""
        o = self.options
        out = [u, px, py]           # every pair's state; rows of `pick` are updated from `work`
        pick = None                 # batch rows of the working set (None: all of them)
        work, data = [u, px, py], [ig, inv_grad, rho_c]
        active, n = None, 0         # active: working pairs not stopped yet (None: all)
        for _ in range(o["outer_iterations"]):
            if o["median_filtering"] > 1:
                u = work[0]
                filtered = torch.cat([self._median(u[:, :2], o["median_filtering"]), u[:, 2:]], dim=1)
                work[0] = _keep(active, filtered, u)
            for _ in range(o["inner_iterations"]):
                *new, change = self._iteration(*work, *data, l_t, o["theta"], taut)
                work = [_keep(active, a, b) for a, b in zip(new, work)]
                going = change > stop
                active = going if active is None else active & going
                n += 1
                if n % self.check_every == 0:  # (waits for the device)
                    if bool(active.all()):
                        active = None
                        continue
                    out = self._put_back(out, pick, work)
                    if not bool(active.any()):
                        return out
                    keep = active.nonzero()[:, 0]
                    pick = keep if pick is None else pick[keep]
                    work, data = [t[keep] for t in work], [t[keep] for t in data]
                    active = None
        return self._put_back(out, pick, work)

    @staticmethod
    def _put_back(out, pick, work):
        if pick is None:
            return list(work)
        return [full.index_copy(0, pick, part) for full, part in zip(out, work)]


def opencv_tvl1(options: Optional[Mapping] = None):
    """OpenCV's DualTVL1 with the same parameters (tests and benchmarks compare the two)."""
    import cv2

    o = check_options(options)
    if o["interpolation"] != "bicubic":
        raise OptionError("tvl1-torch: OpenCV's DualTVL1 warps bicubic only")
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=o["tau"], lambda_=o["lambda"], theta=o["theta"], nscales=o["nscales"], warps=o["warps"],
        epsilon=o["epsilon"], innnerIterations=o["inner_iterations"], outerIterations=o["outer_iterations"],
        scaleStep=o["scale_step"], gamma=o["gamma"], medianFiltering=o["median_filtering"])


@register_flow
class TVL1Torch(FlowMethod):
    """Dual TV-L1 as OpenCV's, in PyTorch: every pair of a chunk at once, on CPU or CUDA."""

    name = "tvl1-torch"
    summary = "Dual TV-L1 as OpenCV computes it, in PyTorch, batched on --device"
    # its "parameters": DEFAULTS with the run's flow options applied
    record = {"implementation": "tapos.extract.tvl1 (PyTorch Dual TV-L1, OpenCV's scheme)"}
    batched = True
    DEFAULTS = DEFAULTS

    def check_options(self, options):
        return check_options(options)

    def batch_function(self, device, options, threads):
        return TVL1(options, device, threads=threads).sequence
