#!/usr/bin/env python
"""Generate the synthetic phantom cohort as a normalised dataset (same as `livervae phantom`).

Example:
    python data_prep/make_phantoms.py --n 12 --seed 0 --out runs/phantoms
"""

import sys

from livervae.cli import main

if __name__ == "__main__":
    sys.exit(main(["phantom", *sys.argv[1:]]))
