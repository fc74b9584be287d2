"""Tests that need a real NVIDIA GPU: marked ``gpu``, deselected by default, run by hack/gpu-validation.sh."""
