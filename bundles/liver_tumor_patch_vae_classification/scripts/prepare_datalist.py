"""Prepare a dataset for this bundle: `python -m scripts.prepare_datalist --format lits --source DIR --out DIR`.

A thin wrapper over `livervae preprocess`, which writes images/, labels/ (0 background, 1 liver, 2 tumour) and
the datalist.json with patient-disjoint folds that `configs/train.json` reads through `dataset_dir`.
"""

import sys

from livervae.cli import main

if __name__ == "__main__":
    sys.exit(main(["preprocess", *sys.argv[1:]]))
