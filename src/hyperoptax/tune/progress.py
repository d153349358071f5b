"""What ``hyperoptax tune`` shows while it runs: a tqdm bar on stderr, one line per iteration on stdout."""

from __future__ import annotations

import sys

from hyperoptax.tune.records import fmt

__all__ = ["Progress", "say"]


def say(message: str) -> None:
    """A line on stdout that does not tear a progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


class Progress:
    """The bar (iterations or training steps, best metric so far, ETA) and the lines; silent unless ``verbose``."""

    def __init__(self, start: int, total: int, metric: str, verbose: bool, unit: str = "iter"):
        self.total, self.metric, self.verbose = total, metric, verbose
        self.bar = None
        if verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc="tune", unit=unit, file=sys.stderr,
                            dynamic_ncols=True, disable=None, unit_scale=unit != "iter",
                            bar_format="{desc}: {n_fmt}/{total_fmt} " + unit + " |{bar}| [{elapsed}<{remaining}]{postfix}")

    def say(self, message: str) -> None:
        if self.verbose:
            say(message)

    def show_best(self, best) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"best {self.metric}={'-' if best is None else format(best['metric'], '.4f')}")

    def iteration(self, index: int, records, best, seconds: float) -> None:
        """One finished iteration: its line (every member's metric and configuration) and a bar step."""
        members = " | ".join(_member_text(r) for r in records)
        best_text = "none yet" if best is None else f"{best['metric']:.4f} (trial {best['trial']})"
        self.say(f"[iter {index + 1}/{self.total}] {seconds:.1f}s {self.metric}: {members} || best {best_text}")
        if self.bar is not None:
            self.bar.update(1)
            self.show_best(best)

    def segment(self, steps_done: int, finished, counts: dict, best) -> None:
        """One segment of a scheduled sweep: the bar to ``steps_done``; a line when trials finished in it."""
        if finished:
            ended = ", ".join(f"trial {r['trial']} {r['status']} at {r['steps']} steps"
                              + ("" if r["metric"] is None else f" ({r['metric']:.4f})") for r in finished)
            tally = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            best_text = "none yet" if best is None else f"{best['metric']:.4f} (trial {best['trial']})"
            self.say(f"[{steps_done}/{self.total} steps] {ended} | {tally} || best {best_text}")
        if self.bar is not None:
            self.bar.update(steps_done - self.bar.n)
            self.show_best(best)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _member_text(record) -> str:
    value = "failed" if record["metric"] is None else f"{record['metric']:.4f}"
    params = ", ".join(f"{k}={fmt(v)}" for k, v in record["params"].items())
    return f"{value} ({params})"
