"""Experiments: the keras-tuner search and its records; networks compared over seeds, plotted.
May import: base, config, data, training, inference, preflight."""
