"""Worked examples. `deeplearning_ai` reproduces the seed assignment."""
