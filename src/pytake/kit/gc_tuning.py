"""The garbage collector's settings for a long-running process (`serve`, `worker`).

CPython's cyclic collector runs a young collection every 700 net allocations and, now and then,
a full one that walks every tracked object: the modules, SQLAlchemy's and FastAPI's structures,
the app, hundreds of thousands of objects that live as long as the process. bench/ingest.py
showed those full collections as pauses in request handling (p99 125-160 ms, falling to
27-45 ms without them) and a fifth of a status webhook's CPU. So, once start-up is done:

- what exists then is frozen (`gc.freeze()`): it is never garbage, and collections skip it;
- young collections run every 20,000 allocations instead of 700: request handling allocates in
  bursts, most of it freed by reference counting, so frequent young collections found little.

Cyclic garbage then lives a little longer before it is freed; memory stays bounded, as every
collection still runs, only less often.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 50, 100)

_tuned = False


def tune_for_serving(enabled: bool) -> bool:
    """Apply the settings above, once per process; returns whether this call applied them."""
    global _tuned
    if not enabled or _tuned:
        return False
    _tuned = True
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return True
