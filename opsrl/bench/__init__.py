"""Runs, sweeps, the results store and reports (the top layer, with the command line)."""
