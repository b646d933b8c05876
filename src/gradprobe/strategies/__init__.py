"""Strategies: what a check probes and in what order (every coordinate, a sample of them, or random
directions with localization), within a budget and its cost model; `check` and `assert_gradients`
are their entry point. Imports `judge` and below."""
