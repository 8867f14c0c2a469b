"""Helpers the test modules share, one module per kind (paths, synthetic data, configs, models,
records, notebooks, commands); a test module imports them from here, never from another test module."""
