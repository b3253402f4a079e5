#!/usr/bin/env python
"""Convert a dataset into LiverVAE's normalised layout (same as `livervae preprocess`).

Examples:
    python data_prep/preprocess.py --format lits --source ~/data/LiTS --out runs/lits
    python data_prep/preprocess.py --format hcc-tace-seg --source ~/data/HCC-TACE-Seg \
        --clinical ~/data/HCC-TACE-Seg_clinical_data-V2.xlsx --out runs/hcc
"""

import sys

from livervae.cli import main

if __name__ == "__main__":
    sys.exit(main(["preprocess", *sys.argv[1:]]))
