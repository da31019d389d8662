"""Using a trained model: loading, the export, predict, evaluate and its report, trust, inputs.
May import: base, config, imaging, reading, data, training, preflight."""
