"""The exported SavedModel's contract: its signatures' names, inputs and outputs.

Written by `relunet.export`, read by model loading (`relunet.classifier`), by
`relunet serve` and by TF Serving's clients; kept here, on the bottom floor, so that
each of them imports the names from below instead of from one another.
"""

SIGNATURE = "serving_default"  # uint8 pixels in: IMAGES [n, 28, 28, 1]
BYTES_SIGNATURE = "serving_bytes"  # encoded image files in: IMAGE_BYTES [n]

IMAGES = "images"
IMAGE_BYTES = "image_bytes"

PROBABILITIES = "probabilities"  # float32 [n, 10]
CLASS = "class"  # int64 [n]; -1 where no digit was found (serving_bytes)
DIGIT_FOUND = "digit_found"  # bool [n] (serving_bytes)
