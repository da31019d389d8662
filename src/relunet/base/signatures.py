"""The exported SavedModel's contract: its signatures' names, inputs and outputs.

Written by `relunet.inference.export`, read by model loading
(`relunet.inference.classifier`), by `relunet serve` and by TF Serving's clients; kept
here, on the bottom floor, so that each of them imports the names from below instead of
from one another.
"""

SIGNATURE = "serving_default"  # uint8 pixels in: IMAGES [n, 28, 28, 1], one digit each
BYTES_SIGNATURE = "serving_bytes"  # encoded image files in: IMAGE_BYTES [n]
# Where the items of one row of writing are (the finder, where the export has one):
ROWS_SIGNATURE = "serving_rows"  # ROWS float32 [1, 28, w] in: CENTRES [k], KINDS [k] out

IMAGES = "images"
IMAGE_BYTES = "image_bytes"
ROWS = "rows"
CENTRES = "centres"  # float32 [k]: each item's column on the row, left to right
KINDS = "kinds"  # int32 [k]: relunet.base.mnist's DIGIT, OTHER, POINT or MINUS

# Both signatures:
PROBABILITIES = "probabilities"  # float32 [n, 10], calibrated
CLASS = "class"  # int64 [n]; -1 where no one digit was read
NOT_A_DIGIT = "not_a_digit"  # bool [n]: written, but not read as digits
# serving_bytes only (relunet.inference.answers says what each holds):
DIGIT_FOUND = "digit_found"  # bool [n]
NUMBER = "number"  # string [n]
DIGITS = "digits"  # int64 [n, MAX_DIGITS]
DIGIT_COUNT = "digit_count"  # int32 [n]
DIGIT_PROBABILITIES = "digit_probabilities"  # float32 [n, MAX_DIGITS]
DIGIT_BOXES = "digit_boxes"  # int32 [n, MAX_DIGITS, 4]
