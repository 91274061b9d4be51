"""mnist-edge: train a handwritten-digit model, quantize it to TFLite, run it on the edge.

The Python API is `DigitReader` (see `mnist_edge.runtime.reader`); the command is
`mnist-edge` (`mnist_edge.cli`). The stages are subpackages: `mnist_edge.trainer`,
`mnist_edge.export` and `mnist_edge.runtime` (the on-device part, which never needs TensorFlow).
"""

from mnist_edge.runtime.classifier import ModelError
from mnist_edge.runtime.digits import Digit, FrameResult
from mnist_edge.runtime.images import ImageReadError
from mnist_edge.runtime.reader import DigitReader

__all__ = ["Digit", "DigitReader", "FrameResult", "ImageReadError", "ModelError"]
