"""Pure rendering: (TRTEngine spec, chosen GPU target) -> build plan and Kubernetes objects (dicts).

Nothing here talks to the API server or reads files (except :mod:`trtllm_operator.render.cli`, the
offline ``trtllm-operator render`` entrypoint): the same functions back the operator and the CLI, so
what a reviewer renders is what the operator creates.
"""
