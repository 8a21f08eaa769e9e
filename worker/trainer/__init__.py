"""The training side of one run: spec -> dataset -> Keras model -> streamed fit -> evaluation."""
