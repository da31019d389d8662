"""Reading: an image file made into MNIST digits with no model: header, paper, ink, digits.
May import: base, imaging."""
