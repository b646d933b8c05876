"""Judge: analytic against numerical values within the error bars: per-element codes, tensor and
overall statuses, the resolution achieved, the detection guarantee, and the diagnosis of a wrong
tensor. Imports `estimate` and below."""
