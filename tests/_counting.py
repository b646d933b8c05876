"""A function that counts its calls, so that a rejection "before any work" can be tested."""


class Counting:
    """`function`, counting its calls in `calls`."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args):
        self.calls += 1
        return self.function(*args)
