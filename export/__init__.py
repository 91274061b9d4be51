"""Stage 2: convert the trained Keras model to TFLite variants and report what quantization costs."""
