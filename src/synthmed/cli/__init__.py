"""The ``synthmed`` command line: thin commands over the public library functions."""
