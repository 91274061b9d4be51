"""Stage 2: convert the Keras model to TFLite variants and report what quantization costs."""
