"""Writing files safely: the checkpoints (checkpoint.py) and the aligned-face caches
(data/prepare.py) are written through atomic_write, so an interrupted save never leaves half a file.
Imports nothing from the package, so the data pipeline can use it without loading the network."""
import os
import tempfile


def atomic_write(path, write):
    """write(file object) into a temporary file beside `path`, flushed to disk, then renamed over
    `path`: a crash or Ctrl-C at any moment leaves either the old file or the new one, never half
    of one, and no temporary file behind. (Also used for the aligned-face caches, prepare.py.)"""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file readable by its owner only (0600); a checkpoint is an ordinary
        # output file, so give it the permissions open() would: 0666 minus the user's umask.
        # (os.umask can only be read by setting it; it is set straight back.)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)                     # atomic: the old file stays until this line
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
