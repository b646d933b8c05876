"""Tools: the front ends over the public API: the command line, the demo and the pytest plugin."""
