"""What the host sees, per operation, as small integer codes: the audit's features.

A :class:`HostView` is everything the untrusted host observes of a run of accesses: the pages
each access touched (from the page trace) and, once the sealed client channel records them,
the frames each access exchanged. :func:`extract` turns it into one code per access and per
feature (``-1`` where the feature does not apply, for example a page feature of an access that
touched no page). Each family of features is one function of the view; :data:`FAMILIES` lists
them, so the channel frames join the audit by adding one function (``frame_features``).

The codes are what the leakage estimate counts (mutual information between a secret label and
the code) and what conformance averages per run; ``docs/audit.md`` defines each one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..params import Params
from ..trace import access_pages

__all__ = ["HostView", "host_view", "extract", "FAMILIES", "feature_names", "HISTORY_TAU_BINS",
           "REPEAT_LAGS", "GAP_CODES", "DECAY_CODES", "probe_code"]

#: Lags at which "a page of access t is touched again by access t + lag" is a feature.
REPEAT_LAGS = (1, 2, 4, 8)
#: Time constant of the decayed reveal counts, in multiples of M accesses (algorithm §8).
HISTORY_TAU_BINS = 4
#: Codes of a log2-binned gap: 1 + floor(log2(gap)) for gap >= 1, capped; 0 = never seen.
GAP_CODES = 26
#: Codes of a decayed reveal count: quarters of its steady-state mean, capped.
DECAY_CODES = 16


@dataclass
class HostView:
    """What the host observed of ``T`` accesses."""

    pages: np.ndarray                 #: (T, 2) int, pages touched in trace order, -1 for none
    shape_violations: int = 0         #: accesses whose events are not whole-page touches
    frames: np.ndarray | None = None  #: (T, k) per-access channel frame lengths, when recorded

    def __len__(self) -> int:
        return len(self.pages)

    @property
    def counts(self) -> np.ndarray:
        return (self.pages >= 0).sum(axis=1).astype(np.int8)


def host_view(trace, params: Params) -> HostView:
    """The pages each operation of ``trace`` touched, and how many operations broke the shape
    of an access (:func:`bolt.trace.access_pages`: its page reads, then the writes of the same
    pages in the same order, at most two; algorithm §12)."""
    stride = params.page_stride
    ops = trace.ops()
    pages = np.full((len(ops), 2), -1, np.int64)
    violations = 0
    for t, events in enumerate(ops):
        touched = access_pages(events, stride)
        violations += touched is None
        touched = touched or []
        pages[t, :len(touched)] = touched
    return HostView(pages, violations)


@njit(cache=True, inline="always")
def _gap_code(gap):
    if gap <= 0:
        return 0
    code = 1
    while gap > 1 and code < GAP_CODES - 1:
        gap >>= 1
        code += 1
    return code


@njit(cache=True, nogil=True)
def _page_kernel(pages, host_bins, tau, decay_mean, lag_g, lags, out):
    """Fill ``out`` (features x T) with the page codes; see :func:`page_features`."""
    t_count = pages.shape[0]
    last_x = np.full(host_bins, -1, np.int64)        # access that last revealed p as x
    last_touch = np.full(host_bins, -1, np.int64)
    decay = np.zeros(host_bins, np.float64)          # decayed x reveals, as of decay_at
    decay_at = np.zeros(host_bins, np.int64)
    last_page = -1
    previous_x = -1                                   # x of access t-1 if it touched two
    for t in range(t_count):
        p0 = pages[t, 0]
        p1 = pages[t, 1]
        n = (p0 >= 0) + (p1 >= 0)
        out[0, t] = n
        out[1, t] = p0 if n == 2 else -1
        out[2, t] = p1 if n == 2 else (p0 if n == 1 else -1)
        if n >= 1:
            out[3, t] = _gap_code(abs(p0 - last_page) + 1) if last_page >= 0 else 0
            out[4, t] = _gap_code(t - last_touch[p0]) if last_touch[p0] >= 0 else 0
        else:
            out[3, t] = -1
            out[4, t] = -1
        if n == 2:
            out[5, t] = (1 if p0 == previous_x else 0) if previous_x >= 0 else -1
            out[6, t] = _gap_code(t - last_x[p0]) if last_x[p0] >= 0 else 0
            d = decay[p0] * np.exp(-(t - decay_at[p0]) / tau)
            code = int(4.0 * d / decay_mean)
            out[7, t] = code if code < DECAY_CODES else DECAY_CODES - 1
            if lag_g > 0 and t >= lag_g and pages[t - lag_g, 1] >= 0:
                out[8, t] = 1 if pages[t - lag_g, 0] == p0 else 0
            else:
                out[8, t] = -1
        else:
            out[5, t] = -1
            out[6, t] = -1
            out[7, t] = -1
            out[8, t] = -1
        for i in range(lags.shape[0]):
            lag = lags[i]
            if n == 0 or t + lag >= t_count:
                out[9 + i, t] = -1
            else:
                q0 = pages[t + lag, 0]
                q1 = pages[t + lag, 1]
                hit = (q0 >= 0 and (q0 == p0 or q0 == p1)) or (q1 >= 0 and (q1 == p0 or
                                                                            q1 == p1))
                out[9 + i, t] = 1 if hit else 0
        # update the history after the features of access t
        if n == 2:
            decay[p0] = decay[p0] * np.exp(-(t - decay_at[p0]) / tau) + 1.0
            decay_at[p0] = t
            last_x[p0] = t
            previous_x = p0
        else:
            previous_x = -1
        if n >= 1:
            last_touch[p0] = t
            last_page = p0
        if n == 2:
            last_touch[p1] = t
            last_page = p1


#: Page features, in the kernel's row order.
PAGE_FEATURES = ("touches", "page_x", "page_y", "distance", "touch_gap", "x_repeat", "x_gap",
                 "x_decay", "x_lag_repeat") + tuple(f"repeat_lag{lag}" for lag in REPEAT_LAGS)


def page_features(view: HostView, params: Params, *, lag: int = 0) -> dict[str, np.ndarray]:
    """Codes from the host pages, per access ``t``:

    - ``touches``: pages touched (0, 1, 2);
    - ``page_x``: the first page of a two-page access (that is bin x's page); ``page_y``: the
      page of a one-page access or the second of two (y's, or x's when y is an HBM bin);
    - ``distance``: log2 bin of 1 + |first page - the page touched last before it|;
    - ``touch_gap``: log2 bin of the accesses since the first page was last touched at all;
    - ``x_repeat``: x equals the x of access t - 1 (both two-page accesses);
    - ``x_gap``: log2 bin of the accesses since page x was last revealed as x (0: never);
    - ``x_decay``: page x's reveals as x, each decayed by exp(-age / tau), tau = 4M
      accesses, in quarters of the steady-state mean h^2 tau / B;
    - ``x_lag_repeat``: x equals the x of access t - ``lag`` (when ``lag`` > 0);
    - ``repeat_lag{L}``: a page of access t is touched again by access t + L.
    """
    tau = HISTORY_TAU_BINS * params.bins
    decay_mean = params.host_fraction ** 2 * tau / params.host_bins
    out = np.empty((len(PAGE_FEATURES), len(view)), np.int32)
    _page_kernel(np.ascontiguousarray(view.pages, dtype=np.int64), params.host_bins, float(tau),
           decay_mean, int(lag), np.asarray(REPEAT_LAGS, np.int64), out)
    return dict(zip(PAGE_FEATURES, out))


def frame_features(view: HostView, params: Params, *, lag: int = 0) -> dict[str, np.ndarray]:
    """Codes from the client channel's frames (count and length of each access's frames);
    empty until the channel records them (``view.frames`` None)."""
    if view.frames is None:
        return {}
    frames = np.asarray(view.frames)
    return {"frame_count": (frames > 0).sum(axis=1).astype(np.int64),
            "frame_bytes": frames.sum(axis=1).astype(np.int64)}


#: The feature families: each maps a view to {feature: codes}.
FAMILIES: tuple[Callable, ...] = (page_features, frame_features)


def extract(view: HostView, params: Params, *, lag: int = 0) -> dict[str, np.ndarray]:
    """Every feature's codes (one per access, -1 where it does not apply)."""
    codes = {}
    for family in FAMILIES:
        codes.update(family(view, params, lag=lag))
    return codes


def feature_names(view: HostView | None = None) -> list[str]:
    """Names :func:`extract` returns (page features; frame features when recorded)."""
    names = list(PAGE_FEATURES)
    if view is not None and view.frames is not None:
        names += ["frame_count", "frame_bytes"]
    return names


def probe_code(codes: dict[str, np.ndarray]) -> np.ndarray:
    """One joint code of the page-history observer of algorithm §8: (x_gap, x_decay,
    x_lag_repeat) of a two-page access, -1 otherwise."""
    gap, decay, repeat = codes["x_gap"], codes["x_decay"], codes["x_lag_repeat"]
    joint = (gap * DECAY_CODES + decay) * 3 + (repeat + 1)
    return np.where(gap >= 0, joint, -1)
