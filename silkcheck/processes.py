"""Child processes the targets start (a switch, a user's controller): how they are ended."""

from __future__ import annotations

import subprocess

STOP_GRACE_S = 10.0


def stop_process(process: subprocess.Popen[str] | subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``grace_s``; returns once it is reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
