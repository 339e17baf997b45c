"""Helpers shared by the experiment tests (not a test module)."""


class CountingExecutor:
    """Serial executor that records the keys of the tasks it is given, in order."""

    def __init__(self):
        self.keys = []

    def run(self, tasks, on_result):
        for t in tasks:
            self.keys.append(t.key)
            on_result(t.key, t())
