"""The microcontroller target of `mnist-edge bundle`: the model as C++ for TensorFlow Lite Micro
(package.py), its measured arena (arena.py), and the check against LiteRT (parity.py).
"""
