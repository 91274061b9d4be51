"""Stage 3: the on-device part. Needs numpy, OpenCV, Pillow, click and LiteRT; never TensorFlow."""
