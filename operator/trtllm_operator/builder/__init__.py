"""The program that runs inside the build Job: preflight → quantize → build → verify → publish → measure.

It reads a :class:`~trtllm_operator.api.plan.BuildPlan` (mounted from a ConfigMap), runs the exact
TensorRT-LLM command lines the operator rendered, verifies and atomically publishes the engine,
measures it, and reports a :class:`~trtllm_operator.api.plan.BuildResult` through the termination
message. Entry point: ``python -m trtllm_operator.builder`` (``trtllm-operator-builder``).
"""
