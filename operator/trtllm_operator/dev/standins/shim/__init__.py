"""Directory put FIRST on PYTHONPATH so ``import pynvml`` loads the stand-in in ``pynvml.py``."""
