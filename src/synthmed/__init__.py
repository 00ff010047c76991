"""synthmed: synthetic medical images you can trust and control.

The package is organised by role:

* :mod:`synthmed.findings` — typed structured findings, the prompt renderer and parser.
* :mod:`synthmed.data` — dataset directories, importers, splits, statistics and the
  built-in brain-MRI phantom benchmark.
* :mod:`synthmed.caption` — captioners that turn images (and masks) into findings.
* :mod:`synthmed.cli` — the ``synthmed`` command line, a thin shell over the library.
"""

__version__ = "0.1.0"
