"""Imported first by the scripts here: the working folder leaves the import path before detbench is imported.

`python scripts/x.py` puts the script's own folder first on sys.path, not the working folder, but an empty or
'.' PYTHONPATH entry (as `PYTHONPATH=$PYTHONPATH:/x` leaves) is the working folder again, where a folder named
detbench/ or any .py file would be imported in place of the package. detbench's own children follow the same rule
(detbench.proc.python_module).
"""

import os
import sys

_here = os.getcwd()
sys.path[:] = [entry for entry in sys.path if entry and os.path.abspath(entry) != _here]
