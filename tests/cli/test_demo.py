"""`xtqueue demo --duration 8` as CI runs it: no TTY, embedded Redis, ends on its own, exit 0.

Skipped until executor.app and executor.sim can be imported.
"""

from __future__ import annotations

import os
import subprocess
import sys

from cli_support import needs_executor

pytestmark = needs_executor


def test_demo_runs_to_the_end():
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTQUEUE_")}
    out = subprocess.run([sys.executable, "-m", "xtqueue", "demo", "--duration", "8"], capture_output=True,
                         text=True, timeout=180, env=env, stdin=subprocess.DEVNULL)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "order_filled" in out.stdout, text[-4000:]  # fills happened (live event lines)
    assert "refused as expected" in out.stdout and "error [broker_rejected]" in out.stdout, text[-4000:]
    assert "T+1" in out.stdout
    assert "summary" in out.stdout.lower()
    assert "Traceback" not in text
