"""Raspberry Pi bundle templates (copied by `mnist-edge bundle`) and the aarch64 emulation harness.

Not a part of the installed package: `bundle` needs a source checkout anyway (it builds the
project's wheel), and the emulation harness is for tests and for checking a bundle by hand.
"""
