"""Synthetic abdominal CT phantoms with exact liver/tumour labels and a matching clinical sheet row.

The phantom cohort lets every stage of the pipeline (readers, writer, training, evaluation, weak supervision)
run and be checked against known answers without patient data.

Geometry:
    Every structure is defined in RAS+ world coordinates (millimetres) computed from the case's affine, so the
    storage orientation never matters. In nibabel's RAS+ convention x grows towards the patient's Right,
    y towards Anterior and z towards Superior: `nibabel.aff2axcodes(np.diag([-1, -1, 1, 1]))` is ('L', 'P', 'S')
    because increasing i there lowers x, i.e. walks to the patient's Left. The volume is stored DICOM-like,
    with affine `diag(-sx, -sy, sz)` and a random origin (`Volume.axcodes == "LPS"`). In-plane spacing is drawn
    per case (default 1.3-1.7 mm) and the slice thickness from a few choices (default 2.0, 2.5, 3.0 mm), so the
    grid is anisotropic; the field of view is fixed (default 360 x 280 x 180 mm, x by y by z).

Anatomy (HU in a portal-venous phase):
    body: a slightly lumpy elliptical cross-section, flattened posteriorly, with skin (20), subcutaneous fat
    (about -100) and a muscle ring (40-50) around the abdominal cavity; air (-1000) outside.
    cavity: a mix of bowel (25-45) and visceral fat (-90); above the diaphragm (two domes, the right one higher)
    the lung bases (about -860, textured) beside the heart (50), separated from the abdomen by 5 mm of muscle;
    the lungs reach at most 40 mm below the right dome, so all lung lies above the liver's centroid.
    liver: a soft union of three ellipsoids (right lobe, its posterior-inferior tip, a smaller left lobe crossing
    the midline) sized from the abdominal cavity, with a low-frequency deformation and a thin anterior-inferior
    edge, clipped by the diaphragm, the abdominal wall and every neighbouring organ (each kept a few mm away),
    on the patient's right. Its level set is chosen to approach a volume drawn from 1,350-2,150 mL, within
    limits that keep the shape organ-like, so small abdomens get smaller livers: about 950-1,750 mL (mean about
    1,400 mL) in practice. Parenchyma 100-130 HU drawn per case with a mild smooth texture.
    vessels: tapered tubular trees of portal and hepatic vein branches (radius 1.5-5 mm, 50-90 HU above the
    parenchyma) inside the liver, labelled liver as in LiTS; the extrahepatic portal trunk is background.
    neighbours: spleen (left, parenchyma +0-15), kidneys (posterior, cortex 150-180, medulla 20-40 lower,
    sinus fat), stomach (wall, fluid, anterior gas cap), gallbladder (10), aorta (150-250), IVC (120-160),
    vertebral column (cancellous 220-280, cortical shell and endplates 650-750, discs 80, spinal canal),
    paraspinal muscles, and rib arcs in the body wall descending anteriorly.
    appearance: a slight Gaussian blur (partial volume, `PhantomConfig.blur_sigma_vox`) then white Gaussian noise
    (sigma drawn per case, default 8-18 HU); stored as int16 HU clipped to [-1024, 3071].

Lesions (label 2):
    A per-case tumour burden in [0, 1) sets the lesion count (from `PhantomConfig.lesion_count`) and the largest
    diameter (7 mm at burden 0 to 60 mm at burden 1, log-linear); further lesions are satellites of 15-80 % of
    it (at least 5 mm). Lesions are slightly irregular ellipsoids, hypodense (-60 to -25 HU relative to the
    parenchyma, large ones sometimes with a darker necrotic core) or hyperdense (+25 to +50 HU), with a sharp
    margin or a blurred one (an erfc transition 1.5-4 mm wide; the label stays at the nominal boundary).
    Each lesion is centred on a voxel centre, kept at least `1.25 x` the voxel diagonal inside the liver and
    a voxel diagonal-and-more away from every other lesion, so each is exactly one 26-connected component of
    label 2 whose size is `PhantomLesion.n_voxels`, and every tumour voxel's neighbours are liver or tumour.
    Burden is stratified over aligned blocks of 8 cases (a permutation drawn from the seed and block number),
    so any cohort of 8 or more starting at index 0 spans small to large burden and, by construction (with the
    default lesion settings and no tumour-free cases), holds a lesion under 10 mm (the lightest stratum caps its
    lesions at 9 mm), one over 20 mm (the heaviest starts at 30 mm or more), and hypo- and hyperdense, blurred
    and sharp lesions (the largest lesion of four strata has a fixed appearance).

Determinism:
    `generator` alone fixes which random stream each step draws from and in which order; its docstring says
    which stream each draw uses. Case k is identical whatever the cohort size, and under `PhantomConfig.small()`
    the same (seed, index) gives the same patient at a coarser spacing, up to where lesion placement draws diverge.

Clinical rows carry the real HCC-TACE-Seg column names and codings, derived from the truth by simple clinical
rules (TNM/BCLC from lesion count, size and a burden-dependent vascular invasion, CLIP from Child-Pugh,
morphology, AFP >= 400 and portal invasion, AFP log-normal rising with tumour volume), with about 7 % of the
optional items left missing, so `livervae.data.clinical.compute_severity` follows the tumour burden.

Modules:
    settings: `PhantomConfig`, `PhantomLesion`, `PhantomTruth`, the HU range and the random-stream tags.
    tissues: the codes of the internal tissue map and which of them make up the label and each structure mask.
    geometry: the voxel grid (`Box`, world coordinates), rotations, ellipsoids, smooth random fields.
    anatomy: the case's grid and body, and every organ but the liver, painted into the tissue map.
    liver: the liver, the gallbladder and the intrahepatic portal and hepatic vein trees.
    lesions: tumour burden strata, lesion planning, placement and painting.
    intensities: each tissue's HU, textures, lesion contrast, blur and noise: the rendered int16 CT.
    clinical_sheet: `clinical_row`, the HCC-TACE-Seg clinical-sheet row.
    generator: `generate_case`, `generate_cohort`, `case_id_for`: the orchestrator.
"""

from __future__ import annotations

from livervae.data.phantom.clinical_sheet import clinical_row
from livervae.data.phantom.generator import case_id_for, generate_case, generate_cohort
from livervae.data.phantom.settings import HU_MAX, HU_MIN, PhantomConfig, PhantomLesion, PhantomTruth

__all__ = [
    "HU_MAX",
    "HU_MIN",
    "PhantomConfig",
    "PhantomLesion",
    "PhantomTruth",
    "case_id_for",
    "clinical_row",
    "generate_case",
    "generate_cohort",
]
