"""``python -m fastcnn.bench``: the same as `fastcnn bench`."""
from .cli import main

raise SystemExit(main())
