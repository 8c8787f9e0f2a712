"""The partner side: the ClientApp, data loading and validation, DP-SGD training."""
