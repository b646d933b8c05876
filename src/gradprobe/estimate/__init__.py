"""Estimate: the Plan (steps and their ladders) and the Estimator (numerical directional derivatives
with error bars, the loss's noise, exact forward-mode oracles), and the evaluation of the user's
loss at the points they need (serially, vectorized or on an executor). Imports `params` and below."""
