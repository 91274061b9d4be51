"""The Raspberry Pi target of `mnist-edge bundle`: the archive builder (package.py), its
templates, and the aarch64 emulation harness that tests and checks a bundle by hand.
"""
