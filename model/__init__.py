"""The executable specification of a SilkRoad switch (pure Python, no I/O).

Read ``switch.py`` first: it lists every transition. ``decisions.py`` holds the
pipeline and protocol decisions that ``proofs/`` encodes symbolically.
"""
