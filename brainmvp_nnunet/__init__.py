"""brainmvp-nnunet: BrainMVP multi-modal pre-training inside nnU-Net v2.

The library (this package) holds everything that does not subclass nnU-Net: the modality
registry, the synthetic brain generator, networks, losses, weight transfer and metrics.
``dataset_conversion``, ``planners`` and ``trainers`` are installed as sub-packages of this one.
"""

__version__ = "0.1.0"
