"""Developer tools run from a clone of the repository (``python -m tools.<name>`` or ``make``).

Not part of the distribution: they read and write files of the source tree, which the installed package
never does.
"""
