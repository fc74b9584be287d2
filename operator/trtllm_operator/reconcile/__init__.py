"""Pure decisions: (spec, observed children, nodes, now) -> what to create and the new status.

Handlers gather inputs, these functions decide, :mod:`trtllm_operator.k8s` writes once.
"""
