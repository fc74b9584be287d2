"""trtllm-operator: TensorRT-LLM engines built, validated and served on the GPUs a cluster really has."""

__version__ = "0.1.0"
