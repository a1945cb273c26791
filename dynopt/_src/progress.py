"""Progress that users see, on a terminal and in a log file.

On a terminal, a tqdm bar. When stderr is a file or a pipe (a batch job, a
``nohup`` run, a notebook's captured output), tqdm's carriage returns would
pile up on one line, so a plain line is written instead: one at the start, then
at most one every ``interval`` seconds, and the last one::

    train: 1200/5000 steps (24%) 12.3 s loss=0.123

``enabled=False`` silences both.
"""

from __future__ import annotations

import sys
import time

INTERVAL = 10.0


class _Lines:
    def __init__(self, total, desc, unit, initial, interval):
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self.interval = initial, interval
        self.start = time.monotonic()
        self.last = None
        self.postfix = None
        self._write(self.start)  # a log shows when the task started

    def update(self, n=1, postfix=None):
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if now - self.last >= self.interval or self.done:
            self._write(now)

    @property
    def done(self):
        return self.total is not None and self.n >= self.total

    def _write(self, now):
        self.last, self.written = now, self.n
        total = f"/{self.total}" if self.total is not None else ""
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = ""
        if self.postfix:
            extra = " " + " ".join(f"{k}={v:.4g}" for k, v in self.postfix.items())
        sys.stderr.write(
            f"{self.desc}: {self.n}{total} {self.unit}{share} "
            f"{now - self.start:.1f} s{extra}\n"
        )
        sys.stderr.flush()

    def close(self):
        if not self.done and self.n != self.written:
            self._write(time.monotonic())


class _Bar:
    def __init__(self, bar):
        self.bar = bar

    def update(self, n=1, postfix=None):
        if postfix is not None:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(n)

    def close(self):
        self.bar.close()


class _Silent:
    def update(self, n=1, postfix=None):
        pass

    def close(self):
        pass


def progress_bar(
    total, enabled=True, desc="", *, unit="steps", initial=0, interval=INTERVAL
):
    """A progress reporter with ``update(n, postfix=None)`` and ``close()``.

    Args:
      total: the number of units of the whole task (or ``None``).
      enabled: ``False`` returns a reporter that writes nothing.
      desc: the name printed first, e.g. the function's name.
      unit: what is counted (default ``"steps"``).
      initial: units already done (a resumed run).
      interval: seconds between two lines when stderr is not a terminal.
    """
    if not enabled:
        return _Silent()
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return _Bar(tqdm(total=total, initial=initial, desc=desc, unit=unit))
    return _Lines(total, desc, unit, initial, interval)
