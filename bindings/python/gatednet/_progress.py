"""Progress display for ``fit(progress=True)`` and long kernel calls: a tqdm bar
(``tqdm.auto``, so it renders as a widget in Jupyter) when tqdm is installed, otherwise plain
text lines on stderr. Imported lazily: tqdm is an optional dependency."""

from __future__ import annotations

import sys
import time


def _tqdm_class():
    """tqdm.auto.tqdm, or None when tqdm is not importable."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _format_metrics(m):
    parts = [f"loss {m['train_loss']:.4f}", f"acc {m['train_accuracy']:.4f}"]
    if m.get("test_accuracy") is not None:
        parts.append(f"test_loss {m['test_loss']:.4f}")
        parts.append(f"test_acc {m['test_accuracy']:.4f}")
    return ", ".join(parts)


class EpochProgress:
    """One bar over the epochs of a fit() call, advanced by the per-epoch metrics dicts."""

    def __init__(self, epochs, desc="fit"):
        self.epochs = epochs
        self.desc = desc
        tqdm = _tqdm_class()
        self.bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=True) if tqdm is not None else None

    def update(self, metrics):
        """Advance by one epoch and show its metrics."""
        if self.bar is not None:
            self.bar.set_postfix_str(_format_metrics(metrics), refresh=False)
            self.bar.update(1)
        else:
            print(f"{self.desc}: epoch {metrics['epoch_in_call']}/{metrics['epochs_in_call']} "
                  f"(epoch {metrics['epoch']}): {_format_metrics(metrics)} ({metrics['seconds']:.2f} s)",
                  file=sys.stderr, flush=True)

    def close(self):
        """Close the bar (idempotent)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class FractionProgress:
    """A kernel progress callback (``progress(fraction)``) drawing a percentage bar; without
    tqdm, a text line every 10 % (and at the end). Returns None, so it never cancels."""

    def __init__(self, desc="kernel"):
        self.desc = desc
        self.done = 0
        self.next_line = 10
        self.start = time.monotonic()
        tqdm = _tqdm_class()
        self.bar = tqdm(total=100, desc=desc, unit="%", leave=True) if tqdm is not None else None

    def __call__(self, fraction):
        percent = max(0, min(100, int(round(fraction * 100))))
        if self.bar is not None:
            if percent > self.done:
                self.bar.update(percent - self.done)
        elif percent >= self.next_line or percent == 100 and self.done < 100:
            print(f"{self.desc}: {percent}% ({time.monotonic() - self.start:.1f} s)", file=sys.stderr, flush=True)
            self.next_line = (percent // 10 + 1) * 10
        self.done = max(self.done, percent)

    def close(self):
        """Close the bar (idempotent)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
