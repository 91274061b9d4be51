"""Stage 1: load MNIST and train the 784-128-10 dense network."""
