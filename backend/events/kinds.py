"""Event kinds both sides name: the API stores them, the worker's training process sends them."""

# a confusion matrix and report at an epoch end (spec evaluation.every_epoch)
EPOCH_EVALUATION = "epoch_evaluation"
