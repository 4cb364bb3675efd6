"""The committed peer fixtures: ``fixtures/NAME.h5``, or the same file gzipped.

Some are committed as ``NAME.h5.gz`` (``gzip -9n`` of the file tf_keras
wrote): HDF5 gives every array a header of about 1 KB, which compresses
tenfold, and pruned and clustered kernels compress well too. `h5` unpacks
such a file once per test process into a temporary directory and returns
its path, so the tests read the bytes tf_keras wrote.
"""

import atexit
import functools
import gzip
import os
import shutil
import tempfile

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@functools.cache
def _directory():
    directory = tempfile.mkdtemp(prefix="tfqnn-interop-fixtures-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


@functools.cache
def h5(name):
    """The path of fixture ``name``'s ``.h5`` file, unpacked from ``.h5.gz`` if committed so."""
    plain = os.path.join(FIXTURES, name + ".h5")
    if os.path.exists(plain):
        return plain
    target = os.path.join(_directory(), name + ".h5")
    with gzip.open(plain + ".gz", "rb") as source, open(target, "wb") as unpacked:
        shutil.copyfileobj(source, unpacked)
    return target


def committed_names():
    """The names of the committed ``.h5`` and ``.h5.gz`` fixtures."""
    return sorted(
        entry.split(".")[0] for entry in os.listdir(FIXTURES) if entry.endswith((".h5", ".h5.gz"))
    )
