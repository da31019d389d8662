"""The shape of the data, stated once: MNIST, Fashion-MNIST and KMNIST are all 28x28
grayscale images with pixels 0..255, in 10 classes (LeCun et al., the MNIST page)."""

IMAGE_SIZE = 28
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)  # what the Keras model takes, per image
IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE
NUM_CLASSES = 10
PIXEL_MAX = 255  # uint8 pixels; the model sees them divided by this, in [0, 1]
MAX_DIGITS = 8  # digits read in a row in one image; more marks than this are not a number

# What a row of writing holds, item by item: the finder says which is where
# (relunet.training.finder), the reader cuts and reads them (relunet.reading.digits).
NOTHING, DIGIT, OTHER, POINT, MINUS = range(5)  # OTHER: a letter, symbol or doodle
ITEM_KINDS = 5
