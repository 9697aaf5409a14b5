"""Init directories (SPEC §12): `serve --init DIR`, `import DIR`, `export --workspace W DIR`
and `mirror … DIR` all read or write one layout, described in `app.initdir.layout`."""

from app.initdir.layout import InitDir, InitDirError, read_init_dir
from app.initdir.load import InitReport, load_init_dir

__all__ = [
    "InitDir",
    "InitDirError",
    "InitReport",
    "load_init_dir",
    "read_init_dir",
]
