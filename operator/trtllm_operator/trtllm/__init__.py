"""TensorRT-LLM's command lines per supported version, as data (see :mod:`.cli_tables`)."""
