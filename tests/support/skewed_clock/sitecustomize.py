"""Put on PYTHONPATH, this makes a Python process a host whose wall clock is off by
``STRONGROOM_TEST_CLOCK_SKEW`` seconds: ``time.time()`` and ``time.time_ns()`` are shifted, while
the monotonic and boot clocks and the dates the storage gives objects keep the true time, as on
a real host with a wrong clock. (libfaketime 0.9.10 breaks ``time.sleep`` in Python 3.11 with
EINVAL, so it cannot run our processes.)"""

import os
import time

_SKEW = float(os.environ.get("STRONGROOM_TEST_CLOCK_SKEW") or 0)
if _SKEW:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _SKEW
    time.time_ns = lambda: _time_ns() + int(_SKEW * 1_000_000_000)
