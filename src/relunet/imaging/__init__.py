"""Imaging: the small image operations reading and training share: morphology, measure, transform.
May import: base."""
