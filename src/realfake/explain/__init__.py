"""Where the evidence lies: Grad-CAM maps of a network's decision, and overlays to read them.

gradcam  Grad-CAM maps of normalised image batches (tensors in, tensors out; no files)
overlay  image and heat-map side by side, captioned (PIL)
explain  overlays for every image of a folder or archive, written as PNGs
"""
