"""`python -m mnist_edge`: the same command as `mnist-edge`."""

from mnist_edge.cli import main

main(prog_name="mnist-edge")
