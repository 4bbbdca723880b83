"""Pure logic: no trio, httpx, apsw, clock or random imports.

Everything here takes time and randomness as arguments, so it is tested with plain values.
"""
