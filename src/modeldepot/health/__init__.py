"""Health: proving a model's bytes are right, and saying what is wrong when they are not.

``structure`` judges whether a file is well-formed without loading or executing it;
``integrity`` observes a snapshot's files (blocking IO, for worker threads) and judges them
against their manifest with a pure function. Monitoring and repair build on these.
"""
