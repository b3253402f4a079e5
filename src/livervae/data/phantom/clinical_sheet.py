"""The phantom patient's clinical-sheet row, in HCC-TACE-Seg's columns and codings.

`clinical_row` derives the row from the case's truth by simple clinical rules, with about 7 %
(`_OPTIONAL_MISSING_P`) of the optional items left missing, so `livervae.data.clinical.compute_severity` follows
the tumour burden. It draws from the row's own random stream (`generator.generate_cohort` seeds it), so the row
never changes the image.
"""

from __future__ import annotations

import math

import numpy as np

from livervae.data.phantom.settings import PhantomTruth

_OPTIONAL_MISSING_P = 0.07


def clinical_row(truth: PhantomTruth, rng: np.random.Generator) -> dict[str, object]:
    """A clinical-sheet row for the phantom patient, in HCC-TACE-Seg's columns and codings.

    Rules (simplified clinical staging, with noise): Tr_Size is the largest nominal diameter (cm, +-5 %
    measurement error); tumor_nodul from the lesion count; T_involvment from tumour/liver volume; vascular
    invasion, nodal and distant spread become likelier with tumour volume; TNM (AJCC 7): I solitary, II
    solitary with vascular invasion or multiple <= 5 cm, IIIa multiple > 5 cm, IIIb major vascular invasion,
    IVa nodes, IVb metastases; BCLC: D for Okuda III or Child-Pugh C, C for vascular invasion or spread, 0 for
    one lesion < 2 cm, A for one lesion or up to three <= 3 cm, else B; Okuda points from involvement > 50 %,
    ascites, albumin < 3 g/dL and bilirubin > 3 mg/dL; CLIP = Child-Pugh (0-2) + morphology (0-2) + AFP >= 400
    + portal invasion; AFP log-normal, median rising with tumour volume. About 7 % of every optional item is
    left missing (None); TCIA_ID and Tr_Size are always present.

    Args:
        truth: the case's known answers.
        rng: the row's own random stream (kept apart from the image's).
    """
    count = len(truth.lesions)
    d_max_mm = max((lesion.diameter_mm for lesion in truth.lesions), default=0.0)
    fraction = truth.tumor_ml / truth.liver_ml if truth.liver_ml > 0 else 0.0
    # Tumour load on a 0-1 scale: 0 mL -> 0, about 300 mL -> 1.
    load = float(np.clip(math.log10(1.0 + truth.tumor_ml) / math.log10(301.0), 0.0, 1.0))
    size_cm = round(max(d_max_mm * (1.0 + rng.normal(0.0, 0.05)), 0.0) / 10.0, 1)
    sex = "M" if rng.random() < 0.8 else "F"
    age = int(np.clip(round(rng.normal(64.0, 10.0)), 30, 90))
    vascular = count > 0 and rng.random() < 0.05 + 0.35 * load
    major_vascular = vascular and rng.random() < 0.5
    nodes = count > 0 and rng.random() < 0.02 + 0.10 * load
    metastases = count > 0 and rng.random() < 0.02 + 0.12 * load
    afp = 10.0 ** (0.7 + 1.1 * math.log10(1.0 + truth.tumor_ml) + rng.normal(0.0, 0.45))
    child_draw = rng.random()
    child = 2 if child_draw < 0.02 + 0.06 * load else 1 if child_draw < 0.17 + 0.31 * load else 0
    okuda_points = int(fraction > 0.5)
    okuda_points += int(rng.random() < 0.10 + 0.30 * load)  # ascites
    okuda_points += int(rng.random() < 0.15 + 0.20 * load)  # albumin < 3 g/dL
    okuda_points += int(rng.random() < 0.05 + 0.15 * load)  # bilirubin > 3 mg/dL
    okuda = "I" if okuda_points == 0 else "II" if okuda_points <= 2 else "III"

    if metastases:
        tnm = "IVb"
    elif nodes:
        tnm = "IVa"
    elif major_vascular:
        tnm = "IIIb"
    elif count >= 2 and d_max_mm > 50.0:
        tnm = "IIIa"
    elif count >= 2 or vascular:
        tnm = "II"
    else:
        tnm = "I"
    if okuda == "III" or child == 2:
        bclc = "D"
    elif vascular or nodes or metastases:
        bclc = "C"
    elif count == 1 and d_max_mm < 20.0:
        bclc = "0"
    elif count == 1 or (count <= 3 and d_max_mm <= 30.0):
        bclc = "A"
    else:
        bclc = "B"
    morphology = 2 if fraction > 0.5 else 1 if count >= 2 else 0
    clip = child + morphology + int(afp >= 400.0) + int(vascular)

    row: dict[str, object] = {
        "TCIA_ID": truth.case_id,
        "Sex": sex,
        "Age": age,
        "Tr_Size": size_cm,
        "tumor_nodul": "multinodular" if count >= 2 else "uninodular",
        "T_involvment": ">50%" if fraction > 0.5 else "< or = 50%",
        "TNM": tnm,
        "BCLC": bclc,
        "CLIP_Score": int(clip),
        "Okuda": okuda,
        "AFP": round(afp, 1),
    }
    for column in ("Sex", "Age", "tumor_nodul", "T_involvment", "TNM", "BCLC", "CLIP_Score", "Okuda", "AFP"):
        if rng.random() < _OPTIONAL_MISSING_P:
            row[column] = None
    return row
