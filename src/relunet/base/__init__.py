"""Leaves: exceptions, the data's shape, the export's contract, files, values, paths, tables.
May import: no other room (and no TensorFlow at import)."""
