"""Training: the network and its train_step, fit, callbacks, backups, run dirs, calibration.
May import: base, config, imaging, data, preflight."""
