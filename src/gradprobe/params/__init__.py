"""Params: a read-only flat view over the user's parameter structure, and the matching of a
gradient structure to it. Imports only `gradprobe._errors`."""
