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
    # the odd lot and the T+1 sell were refused, with the broker's text (as a typed error or a junk order)
    assert out.stdout.count("refused as expected") == 2, text[-4000:]
    assert "broker said:" in out.stdout and "T+1" in out.stdout
    assert "refusals shown: 2 of 2" in out.stdout
    assert "summary" in out.stdout.lower()
    assert "Traceback" not in text
