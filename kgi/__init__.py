"""KGI: virtual try-on with pose-garment keypoints guided inpainting (Li et al., ICCV 2023).

The method as a plain PyTorch library. Nothing in this package imports Ray: ``training/`` and
``deployments/`` build the distributed parts on top of it.
"""

__version__ = "0.1.0"
