"""The demo story of issue 14 (the browser journey in ``tests/test_browser_story.py``): which demo, which
series, which follow-up exports. Shared with the fast data tests in ``tests/test_generate.py``, so the
properties the journey relies on (a drift notice on the shifted series, an alert storm on the applied one,
no storm on the clean newer export) are checked on exactly the data the journey uploads.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

#: the demo the journey serves: 4 services (api-gateway, checkout, payments, search) x 5 metrics x 14 days
DEMO = {"services": 4, "days": 14, "seed": 7}
CONTINUE_DAYS = 3          # the newer export: 3 more days of every series
STORM_HOURS = 48           # the storm export: 2 days of one series, 30 min above / 30 min below
#: the recommendation the journey accepts and applies (its rule selects only this series)
APPLIED = 'error_rate_pct{service="payments"}'
APPLIED_RULE = "PaymentsErrorRateHigh"
#: the series the newer export shifts (x 0.6: data.generate.default_shift) and the drift check flags
SHIFTED = 'request_rate{service="api-gateway"}'
#: the default alert-storm trigger (issue 14): actual episodes/week above the predicted upper bound x 2,
#: judged with at least 24 h of data after the change
STORM_FACTOR = 2.0
STORM_MIN_HOURS = 24


def story_start(now: Any = None) -> pd.Timestamp:
    """First timestamp of the journey's demo: the demo ends in the hour before ``now`` (default: the
    clock), so a change applied during the journey takes effect after the demo and before (almost all
    of) the newer export, as it would in real use. Floored to the hour: the data are the same for every
    start at the same hour of the week."""
    t = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.floor("h") - pd.Timedelta(days=DEMO["days"])
