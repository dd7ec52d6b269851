"""
Loaded by the Python of a server that bench/profile_memory.py starts with this
folder on PYTHONPATH and MEMORY_PROBE_DIR set (and PYTHONTRACEMALLOC, so that
tracemalloc traces from the first import): the profiler writes
MEMORY_PROBE_DIR/NAME.request, and the server collects its garbage and dumps a
tracemalloc snapshot to MEMORY_PROBE_DIR/NAME.snapshot.

Without MEMORY_PROBE_DIR it does nothing.
"""

import os

if os.environ.get("MEMORY_PROBE_DIR"):
    import gc
    import threading
    import time
    import tracemalloc
    from pathlib import Path

    def _answer(directory: Path) -> None:
        while True:
            for request in directory.glob("*.request"):
                request.unlink()
                gc.collect()  # count what lives, not what waits for a collection
                partial = request.with_suffix(".partial")
                tracemalloc.take_snapshot().dump(str(partial))
                partial.rename(request.with_suffix(".snapshot"))
            time.sleep(0.05)

    threading.Thread(
        target=_answer, args=(Path(os.environ["MEMORY_PROBE_DIR"]),), daemon=True
    ).start()
