"""Data layer: any image source -> cached uint8 tensors -> splits -> normalised, augmented batches.

  sources        folders, .zip, .tar and CSV manifests, read without extracting
  layout         class folders and split trees found in a source
  decode         image bytes -> RGB uint8 of one size (the one decoding path)
  cache, build   decoded images cached on disk, built by parallel workers
  loader         load_images(): the one entry point from a source to tensors
  splits         stratified, seeded train/val/test carving; duplicate detection
  dataset        load_splits(config): a data config's splits and statistics
  augment        batch augmentation and normalisation on uint8 tensors
  perturbations  the image degradations shared by robust training and the robustness grid
  batches        samplers and loaders over in-memory splits (sharded under DDP)
  cifar10, info, embedded, perturbed_copy: CIFAR-10 export, source summaries, the embedded
  CIFAKE mini set, perturbed copies of a data set

Importing the package imports nothing else; import names from the modules above. Nothing here
imports Lightning: the LightningDataModule that wraps all of it for training is
realfake.train.datamodule.
"""
