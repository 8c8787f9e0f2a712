"""What both sides import: the task spec, pre-processing, the model registry and accounting."""
