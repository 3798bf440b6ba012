"""Learning-rate schedules of the training loop.

``step`` is the paper's: StepLR, the rate times ``gamma`` every ``step_size`` epochs.
``cosine`` sets the rate at every optimizer step from the run's progress: a linear
warm-up, then half a cosine down to :data:`COSINE_FLOOR` of the base rate. Progress is the
share of steps done, or, for a run that falls behind the pace that ends its steps within
its time limit, the share of the limit used, so that a run that must stop early for time
still ends on a low rate instead of being cut at its peak. The time counts only past
:data:`TIME_GRACE` of the limit: a run's first seconds (start-up, the first kernels) run
slower than its pace, and were they to move the rate, two runs of one seed would end on
different weights although the limit ends neither.
"""

from __future__ import annotations

import math

from brats_sdk.options import OptionEnum

__all__ = ["COSINE_FLOOR", "TIME_GRACE", "LrSchedule", "cosine_factor", "progress"]

#: The cosine schedule's last rate, as a share of the base rate.
COSINE_FLOOR = 0.01

#: The share of the time limit a run may spend before the time moves its rate; the
#: schedule then catches up so that it still ends at the limit.
TIME_GRACE = 0.1


class LrSchedule(OptionEnum):
    """How the learning rate moves during a stage.

    STEP: the paper's StepLR (``step_size`` epochs, factor ``gamma``), per epoch.
    COSINE: per optimizer step, warm-up then cosine decay over the run.
    """

    STEP = "step"
    COSINE = "cosine"


def progress(*, step: int, total_steps: int, elapsed_s: float, time_limit_s: float | None) -> float:
    """Share of the run done, in [0, 1]: steps or time, whichever is further along.

    The time's share counts from :data:`TIME_GRACE` of the limit and reaches 1 at the
    limit. A run whose start-up takes less than the grace and whose pace ends its steps
    within the limit therefore follows its steps alone: its rates do not depend on the
    machine's speed.
    """
    done = step / max(total_steps, 1)
    if time_limit_s is not None and time_limit_s > 0:
        done = max(done, (elapsed_s / time_limit_s - TIME_GRACE) / (1.0 - TIME_GRACE))
    return min(max(done, 0.0), 1.0)


def cosine_factor(done: float, *, step: int, warmup_steps: int) -> float:
    """Multiplier of the base rate at ``step`` (0-based) with ``done`` of the run behind.

    Args:
        done: :func:`progress` of the run.
        step: Optimizer steps taken so far.
        warmup_steps: Steps of linear warm-up from ``1 / warmup_steps`` to 1.

    Returns:
        A factor in ``(0, 1]``.
    """
    warm = 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)
    decay = COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * done))
    return warm * decay
