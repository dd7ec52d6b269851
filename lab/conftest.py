"""The lab's suites. The stack test (lab/stack/) needs a Docker engine and a
generated project: it runs under `make stack-test`, which sets
STACK_PROJECT_DIR, and is left out of every other run."""

import os

from tests.live import servers  # noqa: F401

collect_ignore = [] if os.environ.get("STACK_PROJECT_DIR") else ["stack"]
