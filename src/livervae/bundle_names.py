"""The names of LiverVAE's bundles (folders under `bundles/`), defined once for code that must not import MONAI."""

LIVER_BUNDLE = "liver_ct_segmentation"
TUMOR_BUNDLE = "liver_tumor_ct_segmentation"
PATCH_VAE_BUNDLE = "liver_tumor_patch_vae_classification"
UNET_BUNDLE = "liver_tumor_unet_segmentation"
BUNDLES = (LIVER_BUNDLE, TUMOR_BUNDLE, PATCH_VAE_BUNDLE, UNET_BUNDLE)
# Bundles trained and evaluated leave-one-patient-out on a cohort of one or more datasets; they read the liver
# region from the label map (a reference or a stage-1 prediction) and score 2D liver patches.
PATCH_BUNDLES = (PATCH_VAE_BUNDLE, UNET_BUNDLE)
# The bundles MONAI Label serves (the patch bundles need a liver mask as input, which its infer API cannot give).
MONAI_LABEL_BUNDLES = (TUMOR_BUNDLE, LIVER_BUNDLE)
